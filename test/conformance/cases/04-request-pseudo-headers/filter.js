// req.method/path/authority/scheme read the pseudo-headers; a missing one reads as "".
// Pseudo-headers are readable through headers too, and writable while the phase is held.
export default {
  onRequest(req, ctx) {
    ctx.log.info(JSON.stringify([req.method, req.path, req.authority, req.scheme]));
    ctx.log.info(req.headers.get(":path"), req.headers.has(":scheme"));
    req.headers.set(":path", "/v2" + req.path);
  },
};
