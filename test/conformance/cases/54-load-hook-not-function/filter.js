// A hook that is not a function is refused; null and undefined mean "no hook".
const filter = { onRequest: null, onResponse: undefined, onRequestData: "data" };
export { filter as default };
