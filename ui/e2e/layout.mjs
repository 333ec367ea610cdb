// The window's layout, measured in a real browser: `npm run test:layout` (not part of `npm test`).
//
// Builds the UI in the `memory` mode (sample handoffs kept in memory, no Tauri: src/lib/sampleInbox.ts)
// into a temporary directory (never ui/dist, which the app and the hub serve), serves it, and drives
// Chromium (/usr/bin/chromium, or $CHROMIUM; playwright-core downloads no browser) through every
// screen at 360×740 and 390×844 (phones), 800×1000 (tablet) and 1280×800 (desktop), in the light
// and the dark theme. Each screen is saved as a PNG in target/layout/ and measured:
//
// - no control is cut off: its box lies inside the viewport (and inside whatever clips it) across;
// - no two controls in sight overlap;
// - on a phone, every control in sight is at least 44 px tall (a checkbox: its label), and an icon
//   button at least 44 px wide;
// - the page never scrolls sideways (document.documentElement.scrollWidth <= innerWidth).
//
// On a phone it also goes back with the browser's Back (list ← conversation ← customer), opens a
// row's actions with a long press, pulls the list to refresh, and shrinks the window as the
// on-screen keyboard does to check that the composer stays in sight.

import { createServer } from "node:http";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { extname, join, normalize, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "vite";
import { chromium } from "playwright-core";

const ui = fileURLToPath(new URL("..", import.meta.url));
const shots = resolve(ui, "../target/layout");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

const VIEWPORTS = [
  { name: "phone-360x740", width: 360, height: 740, kind: "phone" },
  { name: "phone-390x844", width: 390, height: 844, kind: "phone" },
  { name: "tablet-800x1000", width: 800, height: 1000, kind: "tablet" },
  { name: "desktop-1280x800", width: 1280, height: 800, kind: "desktop" },
];
const THEMES = ["light", "dark"];
/** `LAYOUT_ONLY=phone-360 npm run test:layout`: the viewports whose name has that in it. */
const only = process.env.LAYOUT_ONLY;

// ---------------------------------------------------------------------------------------------
// Build and serve.

const site = await mkdtemp(join(tmpdir(), "baton-layout-"));
await build({ root: ui, mode: "memory", logLevel: "warn", build: { outDir: site, emptyOutDir: true } });

const TYPES = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".png": "image/png" };
const server = createServer(async (req, res) => {
  const path = normalize(decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname)).replace(/^(\.\.[/\\])+/, "");
  const file = join(site, path === "/" ? "index.html" : path);
  try {
    const body = await readFile(file);
    res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" });
    res.end(body);
  } catch {
    res.writeHead(404).end();
  }
});
await new Promise((done) => server.listen(0, "127.0.0.1", done));
const address = server.address();
const url = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}/`;

await mkdir(shots, { recursive: true });

// ---------------------------------------------------------------------------------------------
// The measurements, run in the page.

/** Measures the controls in sight: returns what a failed check needs to say. */
function measure(phone) {
  const SELECTOR = 'button, a[href], input:not([type="hidden"]), select, textarea, summary, [role="button"], [role="tab"], [tabindex]:not([tabindex="-1"])';
  const [vw, vh] = [window.innerWidth, window.innerHeight];
  const describe = (el) => {
    const name = (el.getAttribute("aria-label") || el.textContent || el.getAttribute("placeholder") || "").trim().replace(/\s+/g, " ").slice(0, 40);
    const id = el.getAttribute("data-testid");
    return `${el.tagName.toLowerCase()}${id ? `[${id}]` : ""}${name ? ` "${name}"` : ""}`;
  };
  /** The part of `el` its clipping ancestors and the viewport let through. */
  const visibleBox = (el) => {
    const r = el.getBoundingClientRect();
    const box = { l: Math.max(r.left, 0), t: Math.max(r.top, 0), r: Math.min(r.right, vw), b: Math.min(r.bottom, vh) };
    let mode = getComputedStyle(el).position;
    for (let a = el.parentElement; a && mode !== "fixed"; a = a.parentElement) {
      const cs = getComputedStyle(a);
      // An absolutely placed box escapes the overflow of all but its containing block's chain.
      if (mode === "absolute" && cs.position === "static" && cs.transform === "none") continue;
      const ar = a.getBoundingClientRect();
      if (cs.overflowX !== "visible") [box.l, box.r] = [Math.max(box.l, ar.left), Math.min(box.r, ar.right)];
      if (cs.overflowY !== "visible") [box.t, box.b] = [Math.max(box.t, ar.top), Math.min(box.b, ar.bottom)];
      mode = cs.position === "absolute" || cs.position === "fixed" ? cs.position : "static";
    }
    return box;
  };
  /** What opens over the screen (a menu, a sheet, a drawer, a dialog, a popup): what it covers is
   * meant to be covered. */
  const OVERLAYS = ".app-menu, .action-sheet, .scrim, .customer-panel.drawer, .shortcuts, .viewer, .templates";
  /** Sticky headers, composers, drawers, sheets and menus cover what scrolls under them. */
  const onTopLayer = (el) => {
    for (let a = el; a; a = a.parentElement) {
      const p = getComputedStyle(a).position;
      if (p === "fixed" || p === "sticky" || p === "absolute") return true;
    }
    return false;
  };
  const found = [];
  const problems = { cutOff: [], covered: [], small: [], overlaps: [] };
  let smallest = null;
  let narrowestIcon = null;
  for (const el of document.querySelectorAll(SELECTOR)) {
    const rect = el.getBoundingClientRect();
    if (rect.width === 0 || rect.height === 0) continue;
    const style = getComputedStyle(el);
    if (style.visibility === "hidden" || Number(style.opacity) === 0) continue;
    const box = visibleBox(el);
    if (box.b - box.t < 4) continue; // scrolled out of sight (up or down), or a sliver of it at an edge
    if (box.r - box.l <= 0.5) {
      problems.cutOff.push(`${describe(el)} is entirely off to the side (x ${Math.round(rect.left)}…${Math.round(rect.right)})`);
      continue;
    }
    const [cx, cy] = [(box.l + box.r) / 2, (box.t + box.b) / 2];
    const hit = document.elementFromPoint(cx, cy);
    const labels = el.labels ? [...el.labels] : [];
    const mine = hit && (hit === el || el.contains(hit) || labels.some((l) => l === hit || l.contains(hit)));
    if (!mine) {
      if (hit && !onTopLayer(hit)) problems.covered.push(`${describe(el)} is covered by ${describe(hit)}`);
      continue;
    }
    if (rect.left < box.l - 1 || rect.right > box.r + 1) problems.cutOff.push(`${describe(el)} is cut off (x ${Math.round(rect.left)}…${Math.round(rect.right)}, shown ${Math.round(box.l)}…${Math.round(box.r)})`);
    // The target a finger has: a checkbox's label, a control's own box.
    const target = (el.type === "checkbox" || el.type === "radio") && labels[0] ? labels[0].getBoundingClientRect() : rect;
    const icon = el.tagName === "BUTTON" && (el.textContent ?? "").trim().length <= 2;
    if (!smallest || target.height < smallest.height) smallest = { height: Math.round(target.height * 10) / 10, what: describe(el) };
    if (icon && (!narrowestIcon || target.width < narrowestIcon.width)) narrowestIcon = { width: Math.round(target.width * 10) / 10, what: describe(el) };
    if (phone && target.height < 43.5) problems.small.push(`${describe(el)} is ${Math.round(target.height)} px tall`);
    if (phone && icon && target.width < 43.5) problems.small.push(`${describe(el)} is ${Math.round(target.width)} px wide`);
    found.push({ el, box, what: describe(el) });
  }
  for (let i = 0; i < found.length; i++) {
    for (let j = i + 1; j < found.length; j++) {
      const [a, b] = [found[i], found[j]];
      if (a.el.contains(b.el) || b.el.contains(a.el)) continue;
      const w = Math.min(a.box.r, b.box.r) - Math.max(a.box.l, b.box.l);
      const h = Math.min(a.box.b, b.box.b) - Math.max(a.box.t, b.box.t);
      if (w <= 1 || h <= 1) continue;
      // An overlay over a control (the menu over the list) is not two controls in each other's way.
      if (a.el.closest(OVERLAYS) !== b.el.closest(OVERLAYS)) continue;
      problems.overlaps.push(`${a.what} overlaps ${b.what} (${Math.round(w)}×${Math.round(h)} px)`);
    }
  }
  // Content wider than the box that scrolls it (a table, a row of fields): cut off at the side.
  for (const el of document.querySelectorAll("body *")) {
    if (el.matches("input, textarea, select") || el.clientWidth === 0) continue;
    const cs = getComputedStyle(el);
    if ((cs.overflowX === "auto" || cs.overflowX === "scroll") && el.scrollWidth > el.clientWidth + 1)
      problems.cutOff.push(`${describe(el)} scrolls sideways (${el.scrollWidth} px in ${el.clientWidth})`);
  }
  const scrollWidth = Math.max(document.documentElement.scrollWidth, document.body.scrollWidth);
  return { controls: found.length, smallest, narrowestIcon, scrollWidth, innerWidth: vw, problems };
}

// ---------------------------------------------------------------------------------------------
// Driving the window.

const results = [];
const failures = [];

async function check(page, viewport, theme, screen) {
  await page.mouse.move(1, 1); // no hover left where the last click was
  await page.waitForTimeout(280); // the drawer's and the list's transitions
  const file = join(shots, `${viewport.name}-${theme}-${screen}.png`);
  await page.screenshot({ path: file });
  const m = await page.evaluate(measure, viewport.kind === "phone");
  const row = { viewport: viewport.name, theme, screen, file, ...m };
  results.push(row);
  const where = `${viewport.name} ${theme} ${screen}`;
  for (const [kind, list] of Object.entries(m.problems)) for (const p of list) failures.push(`${where}: ${kind}: ${p}`);
  if (m.scrollWidth > m.innerWidth) failures.push(`${where}: the page scrolls sideways (${m.scrollWidth} > ${m.innerWidth})`);
  return m;
}

/** The rest of a screen that scrolls: `selector` scrolled to its other end, measured too. */
async function checkOtherEnd(page, viewport, theme, screen, selector, to = "bottom") {
  const moved = await page.evaluate(
    ([sel, end]) => {
      const el = document.querySelector(sel);
      if (!el || el.scrollHeight <= el.clientHeight) return false;
      el.scrollTop = end === "bottom" ? el.scrollHeight : 0;
      return true;
    },
    [selector, to],
  );
  if (moved) await check(page, viewport, theme, `${screen}-${to}`);
}

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

async function shown(page, selector, timeout = 5_000) {
  await page.locator(selector).first().waitFor({ state: "visible", timeout });
}

async function gone(page, selector, timeout = 5_000) {
  await page.locator(selector).first().waitFor({ state: "hidden", timeout });
}

/** The header's panel button: in the menu on a phone. */
async function headerButton(page, viewport, testid) {
  if (viewport.kind === "phone") {
    await page.click('[data-testid="menu-toggle"]');
    await shown(page, '[data-testid="app-menu"]');
  }
  await page.click(`[data-testid="${testid}"]`);
}

/** The row whose title is `title`. */
const row = (page, title) => page.locator('[data-testid="handoff-item"]', { hasText: title });

async function run(viewport, theme, browser) {
  const phone = viewport.kind === "phone";
  const touch = viewport.kind !== "desktop";
  const context = await browser.newContext({
    viewport: { width: viewport.width, height: viewport.height },
    deviceScaleFactor: 1,
    isMobile: touch,
    hasTouch: touch,
    colorScheme: theme,
  });
  // One moment for every run, so the screenshots are the same from one run to the next.
  await context.clock.setFixedTime(new Date("2026-11-30T17:00:00Z"));
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (err) => errors.push(String(err)));
  await page.goto(url);

  page.setDefaultTimeout(10_000);
  // Settings opens by itself on a desk whose bot cannot reply yet (the sample's): a screen first.
  await shown(page, '[data-testid="settings"]');
  await check(page, viewport, theme, "settings");
  await checkOtherEnd(page, viewport, theme, "settings", ".settings");
  await page.click('[data-testid="settings-close"]');
  await gone(page, '[data-testid="settings"]');

  await shown(page, '[data-testid="handoff-item"]');
  await check(page, viewport, theme, "list");

  if (phone) {
    await page.click('[data-testid="menu-toggle"]');
    await shown(page, '[data-testid="app-menu"]');
    await check(page, viewport, theme, "menu");
    await page.keyboard.press("Escape");
    await gone(page, '[data-testid="app-menu"]');

    // Pull to refresh: down from the top of the list, past the mark, and let go.
    const first = await row(page, "Refund for a cancelled order").boundingBox();
    expect(first, "no first row");
    const [x, y] = [first.x + first.width / 2, first.y + 20];
    await page.mouse.move(x, y);
    await page.mouse.down();
    for (let dy = 10; dy <= 160; dy += 10) await page.mouse.move(x, y + dy);
    await shown(page, '[data-testid="pull-to-refresh"]');
    expect((await page.textContent('[data-testid="pull-to-refresh"]')).includes("Release to refresh"), "no 'Release to refresh'");
    await page.screenshot({ path: join(shots, `${viewport.name}-${theme}-pull.png`) });
    await page.mouse.up();
    await gone(page, '[data-testid="pull-to-refresh"]');
    expect((await page.locator('[data-testid="action-sheet"], [data-testid="conversation-back"]:visible').count()) === 0, "the pull opened a row");

    // A long press on a row offers its actions; Back (the browser's) closes them.
    const parcel = await row(page, "Parcel late").boundingBox();
    await page.mouse.move(parcel.x + 60, parcel.y + 30);
    await page.mouse.down();
    await page.waitForTimeout(700);
    await page.mouse.up();
    await shown(page, '[data-testid="action-sheet"]');
    expect(await page.isVisible('[data-testid="sheet-assign"]'), "the sheet offers no 'Assign to me'");
    await check(page, viewport, theme, "actions");
    await page.goBack();
    await gone(page, '[data-testid="action-sheet"]');
    expect(!(await page.isVisible('[data-testid="conversation-back"]')), "the long press opened the conversation");
  }

  // A WhatsApp chat (reply, react, send a file) and a bot's draft waiting for a decision.
  for (const [title, screen] of [["Marta Ruiz on WhatsApp", "conversation-whatsapp"], ["Approve the bot's reply", "conversation-draft"]]) {
    await row(page, title).click();
    await shown(page, '[data-testid="conversation-title"]');
    if (screen === "conversation-whatsapp") await page.click('[data-testid="react"]');
    await check(page, viewport, theme, screen);
    if (phone) {
      await page.goBack();
      await shown(page, '[data-testid="handoff-item"]');
    }
  }

  // The conversation Ana holds.
  await page.click('[data-testid="tab-mine"]');
  await row(page, "Broken lamp").click();
  await shown(page, '[data-testid="composer"]');
  if (phone) {
    await shown(page, '[data-testid="conversation-back"]');
    expect(!(await page.isVisible('[data-testid="handoff-item"]')), "the list still shows beside the conversation");
  }
  await check(page, viewport, theme, "conversation");
  await checkOtherEnd(page, viewport, theme, "conversation", ".conversation", "top");

  if (phone) {
    // The on-screen keyboard takes the bottom of the screen (interactive-widget=resizes-content):
    // the composer and the Back button stay in sight.
    await page.focus('[data-testid="composer"]');
    await page.setViewportSize({ width: viewport.width, height: Math.round(viewport.height * 0.55) });
    await page.waitForTimeout(200);
    const [composer, back, height] = await page.evaluate(() => [
      document.querySelector(".composer").getBoundingClientRect().toJSON(),
      document.querySelector('[data-testid="conversation-back"]').getBoundingClientRect().toJSON(),
      window.innerHeight,
    ]);
    expect(composer.top >= 0 && composer.bottom <= height + 0.5, `the composer is not in sight above the keyboard (${composer.top}…${composer.bottom} of ${height})`);
    expect(back.top >= 0 && back.bottom <= height, "the Back button is not in sight with the keyboard up");
    await check(page, viewport, theme, "conversation-keyboard");
    await page.evaluate(() => document.activeElement instanceof HTMLElement && document.activeElement.blur());
    await page.setViewportSize({ width: viewport.width, height: viewport.height });
  }

  // The customer: a screen (phone), a drawer (tablet), the third column (desktop).
  if (touch) {
    await page.click('[data-testid="customer-toggle"]');
    await shown(page, phone ? '[data-testid="customer-back"]' : '[data-testid="customer-close"]');
  }
  await shown(page, '[data-testid="customer-name"]');
  await check(page, viewport, theme, "customer");
  await checkOtherEnd(page, viewport, theme, "customer", ".customer-panel");
  if (phone) {
    // The browser's Back (Android's): customer → conversation → list.
    await page.goBack();
    await shown(page, '[data-testid="conversation-back"]');
    expect(!(await page.isVisible('[data-testid="customer-name"]')), "Back left the customer in sight");
    await page.goBack();
    await shown(page, '[data-testid="handoff-item"]');
    expect(!(await page.isVisible('[data-testid="conversation-title"]')), "Back left the conversation in sight");
  } else if (touch) {
    await page.keyboard.press("Escape");
    await page.waitForTimeout(300);
    expect(!(await page.isVisible('[data-testid="customer-name"]')), "Escape left the drawer open");
  }

  // Search, then a conversation found by it, and back to the results.
  await headerButton(page, viewport, "search-toggle");
  await page.fill('[data-testid="search-input"]', "lamp");
  await shown(page, '[data-testid="search-hit"]');
  await check(page, viewport, theme, "search");
  if (phone) {
    await page.locator('[data-testid="search-hit"]').first().click();
    await shown(page, '[data-testid="conversation-back"]');
    await page.goBack();
    await shown(page, '[data-testid="search-hit"]');
    await page.goBack();
    await shown(page, '[data-testid="handoff-item"]');
  } else {
    await page.click('[data-testid="search-toggle"]');
    await gone(page, '[data-testid="search-input"]');
  }

  await headerButton(page, viewport, "team-toggle");
  await shown(page, '[data-testid="team-row"]');
  await check(page, viewport, theme, "team");
  await page.click('.team .search-bar button');
  await gone(page, '[data-testid="team-view"]');

  await headerButton(page, viewport, "reports-toggle");
  await shown(page, '[data-testid="report-table"]');
  await check(page, viewport, theme, "reports");
  await checkOtherEnd(page, viewport, theme, "reports", ".report");
  await page.click(".report-head .link");
  await gone(page, '[data-testid="report-view"]');

  await headerButton(page, viewport, "shortcuts-toggle");
  await shown(page, '[data-testid="shortcuts"]');
  await check(page, viewport, theme, "shortcuts");
  await page.keyboard.press("Escape");
  await gone(page, '[data-testid="shortcuts"]');

  if (phone) {
    // Every panel closed, Back has nothing left of the app's to close: the list is in sight.
    await shown(page, '[data-testid="handoff-item"]');
    expect(await page.evaluate(() => history.state === null || !history.state.batonLayers), `layers left open: ${JSON.stringify(await page.evaluate(() => history.state))}`);
  }
  // The sign-in form of a desk signed out of its team's hub.
  await page.goto(`${url}?signed-out`);
  await shown(page, "form.sign-in");
  await check(page, viewport, theme, "sign-in");

  for (const e of errors) failures.push(`${viewport.name} ${theme}: page error: ${e}`);
  await context.close();
}

// ---------------------------------------------------------------------------------------------

const browser = await chromium.launch({ executablePath: CHROMIUM, chromiumSandbox: false });
try {
  for (const viewport of VIEWPORTS.filter((v) => !only || v.name.includes(only))) {
    for (const theme of THEMES) {
      try {
        await run(viewport, theme, browser);
      } catch (err) {
        failures.push(`${viewport.name} ${theme}: ${err instanceof Error ? err.message.split("\n")[0] : String(err)}`);
      }
    }
  }
} finally {
  await browser.close();
  server.close();
  await rm(site, { recursive: true, force: true });
}

// One line per viewport: the screens measured, the smallest control, what went wrong.
for (const viewport of VIEWPORTS.filter((v) => !only || v.name.includes(only))) {
  const rows = results.filter((r) => r.viewport === viewport.name);
  const smallest = rows.filter((r) => r.smallest).sort((a, b) => a.smallest.height - b.smallest.height)[0];
  const narrow = rows.filter((r) => r.narrowestIcon).sort((a, b) => a.narrowestIcon.width - b.narrowestIcon.width)[0];
  const count = (kind) => rows.reduce((n, r) => n + r.problems[kind].length, 0);
  const screens = [...new Set(rows.map((r) => r.screen))];
  console.log(
    `${viewport.name}: ${rows.length} screens measured (${screens.join(", ")} × ${THEMES.join("/")}), ${rows.reduce((n, r) => n + r.controls, 0)} controls; ` +
      `smallest control ${smallest ? `${smallest.smallest.height} px tall (${smallest.smallest.what}, ${smallest.screen})` : "–"}; ` +
      `narrowest icon button ${narrow ? `${narrow.narrowestIcon.width} px (${narrow.narrowestIcon.what})` : "–"}; ` +
      `overlaps ${count("overlaps")}, cut off ${count("cutOff")}, covered ${count("covered")}, under 44 px ${viewport.kind === "phone" ? count("small") : "n/a"}, ` +
      `widest page ${Math.max(...rows.map((r) => r.scrollWidth))} px of ${viewport.width}`,
  );
}
console.log(`screenshots: ${shots}`);
if (failures.length > 0) {
  console.error(`\n${failures.length} problem(s):\n${failures.map((f) => `  - ${f}`).join("\n")}`);
  process.exit(1);
}
console.log("layout: every check passed");
