// The router: every page is one module under pages/, chosen by the address.
import { fill, errorBox, h } from "./lib/dom.js";

const routes = [
  [/^\/(?:runs\/?)?$/, "runs", () => import("./pages/runs.js")],
  [/^\/runs\/([^/]+)\/?$/, "runs", () => import("./pages/run.js")],
  [/^\/executions\/(\d+)\/?$/, "runs", () => import("./pages/execution.js")],
  [/^\/artifacts\/(\d+)\/?$/, "runs", () => import("./pages/artifact.js")],
  [/^\/compare\/?$/, "compare", () => import("./pages/compare.js")],
];

async function main() {
  const main = document.getElementById("main");
  const path = location.pathname;
  for (const [pattern, nav, load] of routes) {
    const m = path.match(pattern);
    if (!m) continue;
    for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === nav);
    try {
      const page = await load();
      await page.render(main, ...m.slice(1).map(decodeURIComponent));
    } catch (err) {
      fill(main, errorBox(err));
    }
    return;
  }
  fill(main, errorBox({ code: 404, message: `no page ${path}` }), h("p", {}, h("a", { href: "/runs" }, "All runs")));
}

main();
