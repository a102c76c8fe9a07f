// The findings of an inspection in a few lines: the top of inspect.html and what `convkit inspect` prints.
import type { InspectReport } from './inspect-data.ts'

/** `[what, how many]` rows, plain text. */
export function summaryRows(report: InspectReport): [string, string][] {
  const splits = Object.entries(report.counts)
  const leaks = report.exactDuplicates.filter((g) => g.leakage).length + report.nearDuplicates.filter((p) => p.leakage).length
  const imbalance = Number.isFinite(report.imbalance) ? report.imbalance.toFixed(1) : '∞'
  return [
    ['images', splits.map(([split, counts]) => `${counts.reduce((a, b) => a + b, 0)} ${split}`).join(', ')],
    ['classes', `${report.classes.length}; largest / smallest training class ${imbalance}×`],
    ['unreadable', String(report.unreadable.length)],
    ['exact duplicate groups', String(report.exactDuplicates.length)],
    [
      `near-duplicate pairs (match ≥ ${report.matchThreshold} or similarity ≥ ${report.nearThreshold})`,
      String(report.nearDuplicates.length),
    ],
    ['across splits (leakage)', String(leaks)],
    [
      'likely label errors',
      report.labelErrorsSkipped
        ? `not looked for: ${report.labelErrorsSkipped}`
        : `${report.labelIssues.length} (the ${report.labelModel}'s out-of-sample accuracy ${(100 * (report.labelModelAccuracy ?? 0)).toFixed(1)} %)`,
    ],
    ['suggested exclusions', `${report.exclude.length} (train --exclude inspect.json)`],
  ]
}
