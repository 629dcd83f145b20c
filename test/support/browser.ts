import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { chromium } from 'playwright-core';

/** Where people have Chromium or Chrome: commands on the PATH, then the usual applications of macOS. */
const COMMANDS = ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable', 'chrome'];
const APPLICATIONS = [
  '/Applications/Chromium.app/Contents/MacOS/Chromium',
  '/Applications/Google Chrome.app/Contents/MacOS/Google Chrome',
];

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The browser the dashboard's test drives (playwright-core never downloads one): CHROME_PATH when set, else Chromium
 * or Chrome on the PATH or among macOS's applications, else a browser Playwright installed (`npx playwright install
 * chromium`); null when there is none.
 */
export function findChromium(): string | null {
  if (process.env.CHROME_PATH) return process.env.CHROME_PATH;
  const folders = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  for (const command of COMMANDS)
    for (const folder of folders) if (executable(join(folder, command))) return join(folder, command);
  for (const application of APPLICATIONS) if (executable(application)) return application;
  try {
    const playwrights = chromium.executablePath();
    if (executable(playwrights)) return playwrights;
  } catch {
    // no Playwright browser registered
  }
  return null;
}

/** How to get a browser, for a test that skips without one. */
export const HOW_TO_GET_A_BROWSER =
  'no Chromium or Chrome found: install one (Debian: apt install chromium; Ubuntu: apt install chromium-browser; ' +
  'macOS: brew install --cask chromium), or run `npx playwright install chromium`, or set CHROME_PATH';
