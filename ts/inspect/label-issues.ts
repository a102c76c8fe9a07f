// Likely label errors from out-of-sample class probabilities, by confident learning (Northcutt, Jiang & Chuang 2021):
// the confident joint counts how many images are confidently of a class other than their label, and that many images
// with the lowest probability for their own label are flagged. `bench/inspect.ts` measures it against cleanlab's
// find_label_issues on the same probabilities.

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
 * lower F1 (the probe's probabilities; with the network's, cleanlab's default, which prunes by the calibrated joint,
 * flagged 7 021 at F1 0.72 against 4 565 at 0.84).
 */
export function confidentJoint(probabilities: Float32Array, labels: Int32Array, classes: number): Float64Array {
  const joint = new Float64Array(classes * classes)
  confidentClasses(probabilities, labels, classes).forEach((j, i) => {
    if (j >= 0) joint[labels[i]! * classes + j]!++
  })
  return joint
}

/** Each image's column in the confident joint (see `confidentJoint`), or -1 where it is confidently of no class. */
function confidentClasses(probabilities: Float32Array, labels: Int32Array, classes: number): Int32Array {
  const thresholds = classThresholds(probabilities, labels, classes)
  return Int32Array.from(labels, (_, i) => {
    let confident = -1
    for (let j = 0; j < classes; j++) {
      if (probabilities[i * classes + j]! < thresholds[j]! - 1e-6) continue
      if (confident >= 0) return argmax(probabilities, i, classes)
      confident = j
    }
    return confident
  })
}

/**
 * Likely label errors, most likely first. As many as the confident joint counts off its diagonal, less those whose
 * own label is still (within 1e-6) their most probable class: that many images with the lowest self-confidence
 * (probability of their own label), among those whose most probable class is another (there is something to suggest
 * instead). This is cleanlab 2.9's `filter_by='low_self_confidence'` with its default count, except that cleanlab
 * also flags images whose own label is their most probable class where they rank low enough; here the next least
 * self-confident take their places (`__test__/inspect.spec.ts` compares the two). It ranks all classes together: on CIFAR-10 with 10 % of the labels wrong, taking each class's own
 * count of its least self-confident images, as cleanlab's `prune_by_class` does, flagged as many with precision 0.83
 * and recall 0.77 instead of 0.88 and 0.81 (the label-error network's probabilities, bench/RESULTS.md).
 */
export function findLabelIssues(probabilities: Float32Array, labels: Int32Array, classes: number): LabelIssue[] {
  const self = (row: number) => probabilities[row * classes + labels[row]!]!
  const confident = confidentClasses(probabilities, labels, classes)
  let wrong = 0
  const candidates: number[] = []
  for (let row = 0; row < labels.length; row++) {
    if (self(row) + 1e-6 >= probabilities[row * classes + argmax(probabilities, row, classes)]!) continue
    candidates.push(row)
    if (confident[row]! >= 0 && confident[row] !== labels[row]) wrong++
  }
  return candidates
    .sort((x, y) => self(x) - self(y) || x - y)
    .slice(0, wrong)
    .map((row) => {
      const suggested = argmax(probabilities, row, classes)
      return {
        row,
        given: labels[row]!,
        suggested,
        selfConfidence: self(row),
        suggestedProbability: probabilities[row * classes + suggested]!,
      }
    })
}

/** The most probable class of a row of `probabilities` (`rows × classes`). */
export function argmax(probabilities: Float32Array, row: number, classes: number): number {
  let best = 0
  for (let j = 1; j < classes; j++) if (probabilities[row * classes + j]! > probabilities[row * classes + best]!) best = j
  return best
}
