// Sources given as URLs: data is read from disk only, so a URL where a path belongs is refused with its own message.

/** Whether `text` starts with a URL scheme (`https://`, `s3://`, …). */
export function isUrl(text: string): boolean {
  // The substring test first: a label file asks for every row, nearly no path has '://', and the test costs a fraction
  // of the regular expression.
  return text.includes('://') && /^[a-z][a-z0-9+.-]*:\/\//i.test(text)
}
