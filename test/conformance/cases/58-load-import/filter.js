// The engine has no module loader: an import is refused, naming the module (a relative name
// is resolved against the bundle's own name).
import { helper } from "./lib/helper.js";
export default { onRequest() { helper(); } };
