#!/usr/bin/env node
// Makes sure the browser tests (test/browser/) have a Chromium before `npm test` runs them; npm runs
// this as `pretest`. Plain JavaScript, so it runs on the machine's own Node (20) as well as on 24.
//
//   Chromium present (GATEHOUSE_CHROMIUM_PATH, else /usr/bin/chromium)  -> nothing to do
//   GATEHOUSE_BROWSER_TESTS=0                                        -> nothing to do (tests skipped)
//   missing /usr/bin/chromium, root on Debian/Ubuntu with apt-get    -> apt-get update, install chromium
//   otherwise                                                        -> how to get it, exit status 1
//
// A GATEHOUSE_CHROMIUM_PATH that does not exist is never "fixed" by installing Debian's package,
// which would land elsewhere: the message says what to do instead.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { aptGet, isDebianLike, isRoot, onPath } from './debian-packages.mjs';

const DEBIAN_CHROMIUM = '/usr/bin/chromium';
const custom = process.env.GATEHOUSE_CHROMIUM_PATH;
const chromium = custom || DEBIAN_CHROMIUM;

const say = (line) => console.log(`[chromium] ${line}`);

function howToGetIt(reason) {
  console.error(
    [
      `[chromium] ${reason}`,
      '[chromium] The browser tests (test/browser/) run the sign-in and consent pages in headless Chromium. Either:',
      '[chromium]   install it (Debian/Ubuntu):    sudo apt-get install -y chromium',
      '[chromium]   use another Chromium/Chrome:   GATEHOUSE_CHROMIUM_PATH=/path/to/chromium npm test',
      '[chromium]   skip the browser tests:        GATEHOUSE_BROWSER_TESTS=0 npm test',
      '[chromium] (npm test installs it by itself when run as root on Debian or Ubuntu.)',
    ].join('\n'),
  );
  process.exit(1);
}

if (existsSync(chromium)) process.exit(0);

if (process.env.GATEHOUSE_BROWSER_TESTS === '0') {
  say(`no Chromium at ${chromium}; GATEHOUSE_BROWSER_TESTS=0, so the browser tests will be skipped`);
  process.exit(0);
}

if (custom) {
  howToGetIt(`GATEHOUSE_CHROMIUM_PATH is ${custom}, and nothing is there.`);
}

if (!isDebianLike() || !onPath('apt-get')) {
  howToGetIt(
    `Chromium is not installed at ${DEBIAN_CHROMIUM}, and this is not a Debian or Ubuntu system with apt-get.`,
  );
}

if (!isRoot()) {
  howToGetIt(`Chromium is not installed at ${DEBIAN_CHROMIUM}, and installing it needs root.`);
}

say(
  `Chromium is not installed at ${DEBIAN_CHROMIUM}: installing Debian's chromium package for the browser tests`,
);
say('(about 100 MB from the Debian mirrors; this happens once)');
if (
  !aptGet(['update', '-q'], say) ||
  !aptGet(['install', '-y', '-q', '--no-install-recommends', 'chromium'], say)
) {
  howToGetIt('apt-get could not install chromium (see its output above).');
}
if (!existsSync(DEBIAN_CHROMIUM)) {
  howToGetIt(`apt-get finished, but there is still nothing at ${DEBIAN_CHROMIUM}.`);
}
const version = spawnSync(DEBIAN_CHROMIUM, ['--version'], { encoding: 'utf8' }).stdout?.trim();
say(`installed ${version || DEBIAN_CHROMIUM}`);
