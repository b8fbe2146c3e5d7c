/**
 * Opens the user's browser at a URL: `open` on macOS, `start` on Windows, `xdg-open` elsewhere.
 *
 * Detached and fire-and-forget: the agent never waits for the browser, and a missing opener is not
 * an error (the URL is printed anyway, so the user can open it by hand).
 */
import { spawn } from 'node:child_process';

export function browserCommand(
  url: string,
  platform: NodeJS.Platform = process.platform,
): [string, string[]] {
  if (platform === 'darwin') return ['open', [url]];
  // `start` is a cmd built-in; the empty string is the window title, so a URL with `&` stays one argument.
  if (platform === 'win32') return ['cmd', ['/c', 'start', '""', url.replace(/&/g, '^&')]];
  return ['xdg-open', [url]];
}

/** Tries to open `url` in the system browser; reports (never throws) when it cannot. */
export function openSystemBrowser(url: string, onFailure: (reason: string) => void = () => {}): void {
  const [command, args] = browserCommand(url);
  try {
    const child = spawn(command, args, { detached: true, stdio: 'ignore', windowsHide: true });
    child.once('error', (error) => onFailure(`${command}: ${error.message}`));
    child.unref();
  } catch (error) {
    onFailure(`${command}: ${(error as Error).message}`);
  }
}
