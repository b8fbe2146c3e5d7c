/**
 * An admin operation refused: the admin API answers it as JSON (`{error, error_description, field}`)
 * and the console as a message on the page. `field` names the input at fault, for 400s.
 */
export class AdminError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field: string | undefined;
  constructor(status: number, code: string, message: string, field?: string) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

export const invalid = (field: string, message: string) =>
  new AdminError(400, 'invalid_request', message, field);
export const notFound = (message: string) => new AdminError(404, 'not_found', message);
export const conflict = (message: string) => new AdminError(409, 'conflict', message);
