// native-sse is a native addon: Next.js must load it with Node's require at
// run time, not bundle it (bundled, `next build` fails on its .node file).
export default {
  serverExternalPackages: ['native-sse'],
};
