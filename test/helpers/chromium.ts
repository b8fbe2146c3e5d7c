/**
 * Headless Chromium for the browser suites (test/browser/): where it is, how it starts, and where
 * screenshots go. A missing or broken browser fails the suite with what to do, never skips it
 * silently; GATEHOUSE_BROWSER_TESTS=0 skips it on purpose.
 */
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type Browser, chromium } from 'playwright-core';

export const CHROMIUM = process.env.GATEHOUSE_CHROMIUM_PATH ?? '/usr/bin/chromium';
export const SKIP_BROWSER_TESTS =
  process.env.GATEHOUSE_BROWSER_TESTS === '0' ? 'GATEHOUSE_BROWSER_TESTS=0' : false;

/** Where a suite's screenshots go: GATEHOUSE_SCREENSHOT_DIR, or a new temporary directory. */
export function screenshotDirectory(): string {
  const directory =
    process.env.GATEHOUSE_SCREENSHOT_DIR ?? mkdtempSync(path.join(tmpdir(), 'gatehouse-browser-'));
  mkdirSync(directory, { recursive: true });
  return directory;
}

/** Launches Chromium headless, or throws saying how to install it. */
export function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    return Promise.reject(
      new Error(
        `Chromium is not installed at ${CHROMIUM}, and the browser tests need it. ` +
          'Install it with `sudo apt-get install -y chromium` (Debian/Ubuntu), or point GATEHOUSE_CHROMIUM_PATH ' +
          'at a Chromium or Chrome binary, or set GATEHOUSE_BROWSER_TESTS=0 to skip these tests.',
      ),
    );
  }
  return chromium
    .launch({
      executablePath: CHROMIUM,
      timeout: 30_000,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-quic',
        '--no-first-run',
        '--disable-sync',
      ],
    })
    .catch((error: Error) => {
      throw new Error(
        `Chromium at ${CHROMIUM} did not start (${error.message.split('\n')[0]}). ` +
          'Reinstall it with `sudo apt-get install -y chromium`, or set GATEHOUSE_BROWSER_TESTS=0 to skip these tests.',
        { cause: error },
      );
    });
}
