/**
 * Progress lines (stderr, so that stdout keeps the table and the JSON line) and the run's errors: a
 * request that failed anywhere it must not fail makes the run exit non-zero.
 */

export const progress = (line: string) => process.stderr.write(`bench: ${line}\n`);

export const errors: string[] = [];

/** Records the failed requests of a load, if any. */
export function checkErrors(what: string, result: { errors: number; firstError: string | undefined }): void {
  if (result.errors > 0)
    errors.push(`${what}: ${result.errors} failed requests (first: ${result.firstError})`);
}
