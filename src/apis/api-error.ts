/**
 * Errors the example APIs answer with. Every error body is `{ "error", "error_description" }`
 * (the RFC 6750 §3 vocabulary where one applies); headers carry challenges such as
 * `WWW-Authenticate` or `Retry-After`. Nothing else about a failure reaches the client.
 */
export class ApiError extends Error {
  override name = 'ApiError';
  readonly status: number;
  /** A short machine-readable code, e.g. `invalid_token`, `not_found`. */
  readonly code: string;
  readonly headers: Record<string, string>;

  constructor(status: number, code: string, description: string, headers: Record<string, string> = {}) {
    super(description);
    this.status = status;
    this.code = code;
    this.headers = headers;
  }

  /** The JSON body sent to the client. */
  get body(): { error: string; error_description: string } {
    return { error: this.code, error_description: this.message };
  }
}

export const notFound = (description = 'there is nothing at this path') =>
  new ApiError(404, 'not_found', description);

export const invalidRequest = (description: string) => new ApiError(400, 'invalid_request', description);
