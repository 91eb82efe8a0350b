'use client';

import { useEffect, useState } from 'react';

// The page: an EventSource on the route handler, showing each tick.
export default function Page() {
  const [ticks, setTicks] = useState([]);
  useEffect(() => {
    const source = new EventSource('/api/events');
    source.onmessage = (event) => setTicks((seen) => [...seen.slice(-9), JSON.parse(event.data)]);
    return () => source.close();
  }, []);
  return (
    <main>
      <h1>Ticks</h1>
      <ul>
        {ticks.map((tick) => (
          <li key={tick.n}>
            tick {tick.n} at {tick.at}
          </li>
        ))}
      </ul>
    </main>
  );
}
