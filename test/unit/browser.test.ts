import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { findChromium } from '../support/browser';

describe("the dashboard test's browser", () => {
  it('is CHROME_PATH when set, else the first of chromium, chromium-browser, google-chrome… on the PATH', () => {
    const folder = mkdtempSync(join(tmpdir(), 'batch-browser-'));
    const saved = { PATH: process.env.PATH, CHROME_PATH: process.env.CHROME_PATH };
    try {
      const browser = join(folder, 'chromium-browser');
      writeFileSync(browser, '#!/bin/sh\n');
      chmodSync(browser, 0o755);
      writeFileSync(join(folder, 'chromium'), 'not executable');
      process.env.PATH = folder;
      delete process.env.CHROME_PATH;
      assert.equal(findChromium(), browser);
      process.env.CHROME_PATH = '/opt/chrome/chrome';
      assert.equal(findChromium(), '/opt/chrome/chrome');
    } finally {
      process.env.PATH = saved.PATH;
      if (saved.CHROME_PATH === undefined) delete process.env.CHROME_PATH;
      else process.env.CHROME_PATH = saved.CHROME_PATH;
      rmSync(folder, { recursive: true, force: true });
    }
  });
});
