// res.status parses :status; anything that is not digits reads as 0.
export default {
  onResponse(res, ctx) {
    ctx.log.info("status", res.status, typeof res.status);
  },
};
