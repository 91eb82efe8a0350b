import { Controller, Get, Req, Res } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { EventEndpoint } from 'native-sse';

const TICK_MS = Number(process.env.TICK_MS ?? 1000);

@Controller('events')
export class EventsController {
  // @Res() hands the response to the handler: Nest neither serializes a
  // return value nor ends the response, so the endpoint owns it.
  @Get()
  stream(@Req() req: IncomingMessage, @Res() res: ServerResponse): void {
    const endpoint = new EventEndpoint(req, res);
    let n = Number(endpoint.lastEventId) || 0; // a reconnecting client resumes
    void endpoint.sendEvent('welcome', `resuming after ${n}`);
    const timer = setInterval(() => endpoint.send(`tick ${++n}`, String(n)).catch(() => {}), TICK_MS);
    endpoint.addEventListener('close', () => clearInterval(timer));
  }
}
