// A module without a default export object cannot be a filter.
export const onRequest = () => {};
export default 42;
