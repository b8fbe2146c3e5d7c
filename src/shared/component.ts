/**
 * What every component's start function returns, so the CLI, the launcher and tests treat them alike.
 */
import type { LoadedConfig } from './config/load.ts';
import type { CloseOptions } from './http-server.ts';
import type { Logger } from './logging.ts';

export interface RunningComponent {
  /** The URL the component answers on (its public URL where it has one). */
  url: string;
  /** Stops accepting, lets requests in flight finish until the drain deadline, then releases everything. */
  close(options?: CloseOptions): Promise<void>;
}

export interface ComponentOptions {
  logger?: Logger;
}

export type StartComponent = (loaded: LoadedConfig, options?: ComponentOptions) => Promise<RunningComponent>;

/** Where a component reaches the authorization server: its own setting, else the issuer. */
export function authorizationServerUrl(loaded: LoadedConfig, override: string | undefined): string {
  return (override ?? loaded.config.authorizationServer.issuer).replace(/\/$/, '');
}
