// Streaming chunk edits: replace, append, prepend, clear. A data hook may change the body,
// so a content-length passed on before the end is removed.
export default {
  onResponseData(c) {
    const s = c.text();
    if (s === "drop") c.clear();
    else {
      c.prepend("<");
      c.append(">");
      c.replace(c.text().toUpperCase());
    }
  },
};
