// The typings of the ES module entry point (index.mjs): the same
// declarations as the CommonJS one's, so that `import` and `require` users
// see one API.
export * from "./index.js";
