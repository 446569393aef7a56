export default { onRequest() {} };
