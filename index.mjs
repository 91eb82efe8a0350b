// The ES module entry point: the same classes as the CommonJS one, so that
// `import` and `require` users share one event loop flush and one registry.
import cjs from './index.js';

export const {
  EventEndpoint,
  Channel,
  CloseEvent,
  diagnostics,
  configureStopTokens,
  closeAll,
  setMemoryBudget,
  isSseError,
} = cjs;
export default cjs;
