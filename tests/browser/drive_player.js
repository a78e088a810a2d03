// Drives JupyterLab in headless Chromium for tests/test_browser_player.py.
//
// usage: node drive_player.js CONFIG.json
// CONFIG: {url, userDataDir, screenshots: {playing, stopped}}; url opens the test notebook.
// The notebook's cells: 0 starts player 1, 1 waits for it, 2 starts player 2, 3 waits for it,
// 4 starts player 3, 5 stops it from the kernel and waits, 6 closes all three.
// Every step waits on a condition in the page (Playwright waits), never on a fixed delay.
// Prints one JSON object with what the page and the kernel reported; the test asserts on it.
const fs = require("fs");
const { chromium } = require("playwright-core");

const STEP_MS = 120000;

function stats(page, index) {
  return page.evaluate((i) => {
    const s = document.querySelectorAll(".lmnt-player")[i].lmnt.stats;
    return JSON.parse(JSON.stringify(s));
  }, index);
}

async function runCell(page, index) {
  const editor = page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-InputArea-editor");
  await editor.click();
  await page.keyboard.press("Control+Enter");  // run this cell, stay on it
}

async function cellOutput(page, index, marker) {
  const output = page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-OutputArea-output");
  await output.filter({ hasText: marker }).first().waitFor({ timeout: STEP_MS });
  return (await output.allInnerTexts()).join("\n");
}

function kernelReport(text, marker) {
  const line = text.split("\n").find((l) => l.startsWith(marker));
  return JSON.parse(line.slice(marker.length));
}

async function waitFor(page, index, predicate, arg) {
  await page.waitForFunction(
    ([i, body, a]) => {
      const el = document.querySelectorAll(".lmnt-player")[i];
      return el && el.lmnt && new Function("s", "a", body)(el.lmnt.stats, a);
    },
    [index, predicate, arg],
    { timeout: STEP_MS, polling: 10 },
  );
}

(async () => {
  const config = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
  const browser = await chromium.launchPersistentContext(config.userDataDir, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1200, height: 900 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--autoplay-policy=no-user-gesture-required"],
  });
  const result = {};
  const page = browser.pages()[0] || (await browser.newPage());
  try {
    page.on("console", (m) => { if (m.type() === "error") console.error("page:", m.text()); });
    await page.goto(config.url);
    await page.locator(".jp-Notebook .jp-Cell").nth(6).waitFor({ timeout: STEP_MS });
    // Keys pressed before the kernel is up are lost: wait for the status bar to show it idle.
    await page.locator(".jp-StatusBar-TextItem", { hasText: "| Idle" }).first().waitFor({ timeout: STEP_MS });

    // Player 1: the cell returns while the page is still playing; cell 1 then blocks in wait().
    await runCell(page, 0);
    result.cell0 = await cellOutput(page, 0, "returned");
    await page.locator(".lmnt-player").first().waitFor({ timeout: STEP_MS });
    result.atReturn = await stats(page, 0);
    await runCell(page, 1);
    await waitFor(page, 0, "return s.highlighted.length >= 3");
    await page.locator(".lmnt-player").first().screenshot({ path: config.screenshots.playing });
    result.kernel1 = kernelReport(await cellOutput(page, 1, "KERNEL "), "KERNEL ");
    await waitFor(page, 0, "return s.state === 'ended'");
    result.player1 = await stats(page, 0);

    // Player 2: Stop once three words have been heard.
    await runCell(page, 2);
    await cellOutput(page, 2, "started");
    await waitFor(page, 1, "return s.highlighted.length >= 3");
    await page.locator(".lmnt-player").nth(1).locator(".lmnt-stop").click();
    await waitFor(page, 1, "return s.stops === 1");
    result.atStop = await stats(page, 1);
    await runCell(page, 3);
    result.kernel2 = kernelReport(await cellOutput(page, 3, "STOPPED "), "STOPPED ");
    await waitFor(page, 1, "return s.state === 'ended'");
    result.player2 = await stats(page, 1);
    await page.locator(".lmnt-player").nth(1).screenshot({ path: config.screenshots.stopped });

    // Player 3: stopped by player.stop() in the kernel once two words have been heard.
    await runCell(page, 4);
    await cellOutput(page, 4, "started");
    await waitFor(page, 2, "return s.highlighted.length >= 2");
    await runCell(page, 5);
    result.kernel3 = kernelReport(await cellOutput(page, 5, "KSTOP "), "KSTOP ");
    await waitFor(page, 2, "return s.state === 'ended'");
    result.player3 = await stats(page, 2);

    await runCell(page, 6);
    await cellOutput(page, 6, "closed");
  } catch (err) {
    // What the page showed when a step failed, for the test's report.
    await page.screenshot({ path: config.screenshots.failure, fullPage: true }).catch(() => {});
    const outputs = await page.locator(".jp-OutputArea-output").allInnerTexts().catch(() => []);
    console.error("cell outputs at failure:\n" + outputs.join("\n---\n"));
    throw err;
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(result) + "\n");
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
