// Allocates until the engine's max_heap_bytes is hit, in several shapes.
export default {
  async onRequest(req, ctx) {
    if (req.path === "/arrays") {
      const keep = [];
      for (;;) keep.push(new Array(10000).fill(keep.length));
    }
    if (req.path === "/string") {
      let s = "x";
      for (;;) s = s + s;
    }
    if (req.path === "/later") {
      await null;
      const keep = [];
      for (;;) keep.push({ a: keep.length, b: [1, 2, 3] });
    }
    if (req.path === "/buffer") {
      const keep = [];
      for (;;) keep.push(new Uint8Array(1 << 20));
    }
    req.headers.set("x-ok", "1");
  },
};
