// Likely label errors from out-of-sample class probabilities, by confident learning (Northcutt, Jiang & Chuang 2021):
// the confident joint counts how many images of each given class are confidently of another class, and that many of
// the class's images with the lowest probability for their own label are flagged. `bench/inspect.ts` measures it
// against cleanlab's find_label_issues on the same probabilities.

/** An image whose given label the probabilities disagree with. */
export interface LabelIssue {
  /** Row in the probabilities. */
  row: number
  /** The label the data gives. */
  given: number
  /** The class the probabilities favour. */
  suggested: number
  /** Out-of-sample probability of the given label: the lower, the likelier the label is wrong. */
  selfConfidence: number
  /** Out-of-sample probability of the suggested class. */
  suggestedProbability: number
}

/**
 * Per class, the mean probability of that class over the images labelled with it: an image is confidently of class j
 * when its probability of j reaches j's threshold (confident learning's per-class thresholds, which adapt to classes
 * the model is less sure of). A class no image has gets a threshold no probability reaches.
 */
export function classThresholds(probabilities: Float32Array, labels: Int32Array, classes: number): Float64Array {
  const sums = new Float64Array(classes)
  const counts = new Float64Array(classes)
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i]!
    sums[l]! += probabilities[i * classes + l]!
    counts[l]!++
  }
  return sums.map((s, j) => (counts[j]! > 0 ? s / counts[j]! : Number.POSITIVE_INFINITY))
}

/**
 * The confident joint: `joint[given * classes + true]` counts the images labelled `given` that are confidently of
 * class `true` (probability within 1e-6 of its threshold or above), each image once: for the one class it is
 * confidently of, or its most probable class when it is confidently of several. This is cleanlab 2.9's
 * `compute_confident_joint(calibrate=False)` (`__test__/inspect.spec.ts` compares them), diagonal clip aside. Not
 * calibrated: scaling each row to its label's count flagged half again as many images on CIFAR-10 with 10 % noise, at
 * lower F1.
 */
export function confidentJoint(probabilities: Float32Array, labels: Int32Array, classes: number): Float64Array {
  const thresholds = classThresholds(probabilities, labels, classes)
  const joint = new Float64Array(classes * classes)
  for (let i = 0; i < labels.length; i++) {
    let confident = -1
    let several = false
    for (let j = 0; j < classes; j++) {
      if (probabilities[i * classes + j]! < thresholds[j]! - 1e-6) continue
      if (confident >= 0) several = true
      else confident = j
    }
    if (confident < 0) continue
    joint[labels[i]! * classes + (several ? argmax(probabilities, i, classes) : confident)]!++
  }
  return joint
}

/**
 * Likely label errors, most likely first. For each given class, the confident joint's off-diagonal sum says how
 * many of its images are mislabelled; that many of them with the lowest self-confidence (probability of
 * their own label) are flagged, those whose most probable class is their own label excepted: there is nothing to
 * suggest instead. Ranked by self-confidence, lowest first.
 */
export function findLabelIssues(probabilities: Float32Array, labels: Int32Array, classes: number): LabelIssue[] {
  const joint = confidentJoint(probabilities, labels, classes)
  const byClass: number[][] = Array.from({ length: classes }, () => [])
  for (let i = 0; i < labels.length; i++) byClass[labels[i]!]!.push(i)
  const issues: LabelIssue[] = []
  for (let a = 0; a < classes; a++) {
    let wrong = 0
    for (let b = 0; b < classes; b++) if (b !== a) wrong += joint[a * classes + b]!
    const self = (i: number) => probabilities[i * classes + a]!
    const rows = byClass[a]!.sort((x, y) => self(x) - self(y) || x - y)
    for (const row of rows.slice(0, Math.round(wrong))) {
      const suggested = argmax(probabilities, row, classes)
      if (suggested === a) continue
      issues.push({
        row,
        given: a,
        suggested,
        selfConfidence: self(row),
        suggestedProbability: probabilities[row * classes + suggested]!,
      })
    }
  }
  return issues.sort((x, y) => x.selfConfidence - y.selfConfidence || x.row - y.row)
}

/** The most probable class of a row of `probabilities` (`rows × classes`). */
export function argmax(probabilities: Float32Array, row: number, classes: number): number {
  let best = 0
  for (let j = 1; j < classes; j++) if (probabilities[row * classes + j]! > probabilities[row * classes + best]!) best = j
  return best
}
