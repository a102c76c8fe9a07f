// The name of a run folder made for a run that was given none: the start time, to the second, safe in a file name.

/** `2026-12-07-09-33-02`: UTC, sortable, no colons. */
export function runStamp(): string {
  return new Date().toISOString().replace(/[:T]/g, '-').replace(/\..*$/, '')
}
