/**
 * SASLprep (RFC 4013) exactly the way PostgreSQL applies it to SCRAM passwords.
 *
 * PostgreSQL never rejects a password because of SASLprep: when preparation fails (prohibited
 * character, bad bidi text, empty after mapping) it silently uses the raw bytes instead. Both the
 * server (when it stores the secret) and libpq (when it logs in) do the same, so to compute the
 * same keys we must reproduce the same decisions, including two PostgreSQL quirks:
 *  - a pure-ASCII password is used as is (no control-character check);
 *  - the prohibited/bidi checks run over the *mapped* code points, before NFKC normalization.
 *
 * Known approximation: RFC 3454 pins Unicode 3.2. PostgreSQL carries the 3.2 "unassigned" and
 * "LCat" tables; we approximate them with the runtime's Unicode properties (exact for the
 * supplementary planes, where we list what 3.2 had assigned). Only passwords that mix a character
 * assigned after Unicode 3.2 in the BMP with a character SASLprep changes can differ.
 */

type Range = readonly [number, number];

function inRanges(cp: number, ranges: readonly Range[]): boolean {
  for (const [lo, hi] of ranges) {
    if (cp < lo) return false;
    if (cp <= hi) return true;
  }
  return false;
}

// RFC 3454 C.1.2: mapped to SPACE.
const NON_ASCII_SPACE: readonly Range[] = [
  [0x00a0, 0x00a0], [0x1680, 0x1680], [0x2000, 0x200b], [0x202f, 0x202f], [0x205f, 0x205f], [0x3000, 0x3000],
];

// RFC 3454 B.1: mapped to nothing.
const MAPPED_TO_NOTHING: readonly Range[] = [
  [0x00ad, 0x00ad], [0x034f, 0x034f], [0x1806, 0x1806], [0x180b, 0x180d], [0x200b, 0x200d], [0x2060, 0x2060],
  [0xfe00, 0xfe0f], [0xfeff, 0xfeff],
];

// RFC 4013 §2.3 prohibited output: C.1.2, C.2.1, C.2.2, C.3, C.4, C.5, C.6, C.7, C.8, C.9 (sorted, merged).
const PROHIBITED: readonly Range[] = [
  [0x0000, 0x001f], [0x007f, 0x009f], [0x00a0, 0x00a0], [0x0340, 0x0341], [0x06dd, 0x06dd], [0x070f, 0x070f],
  [0x1680, 0x1680], [0x180e, 0x180e], [0x2000, 0x200f], [0x2028, 0x202f], [0x205f, 0x2063], [0x206a, 0x206f],
  [0x2ff0, 0x2ffb], [0x3000, 0x3000], [0xd800, 0xf8ff], [0xfdd0, 0xfdef], [0xfeff, 0xfeff], [0xfff9, 0xffff],
  [0x1d173, 0x1d17a], [0x1fffe, 0x1ffff], [0x2fffe, 0x2ffff], [0x3fffe, 0x3ffff], [0x4fffe, 0x4ffff],
  [0x5fffe, 0x5ffff], [0x6fffe, 0x6ffff], [0x7fffe, 0x7ffff], [0x8fffe, 0x8ffff], [0x9fffe, 0x9ffff],
  [0xafffe, 0xaffff], [0xbfffe, 0xbffff], [0xcfffe, 0xcffff], [0xdfffe, 0xdffff], [0xe0001, 0xe0001],
  [0xe0020, 0xe007f], [0xefffe, 0x10ffff],
];

// RFC 3454 D.1: characters with bidi property R or AL (Unicode 3.2).
const RAND_AL: readonly Range[] = [
  [0x05be, 0x05be], [0x05c0, 0x05c0], [0x05c3, 0x05c3], [0x05d0, 0x05ea], [0x05f0, 0x05f4], [0x061b, 0x061b],
  [0x061f, 0x061f], [0x0621, 0x063a], [0x0640, 0x064a], [0x066d, 0x066f], [0x0671, 0x06d5], [0x06dd, 0x06dd],
  [0x06e5, 0x06e6], [0x06fa, 0x06fe], [0x0700, 0x070d], [0x0710, 0x0710], [0x0712, 0x072c], [0x0780, 0x07a5],
  [0x07b1, 0x07b1], [0x200f, 0x200f], [0xfb1d, 0xfb1d], [0xfb1f, 0xfb28], [0xfb2a, 0xfb36], [0xfb38, 0xfb3c],
  [0xfb3e, 0xfb3e], [0xfb40, 0xfb41], [0xfb43, 0xfb44], [0xfb46, 0xfbb1], [0xfbd3, 0xfd3d], [0xfd50, 0xfd8f],
  [0xfd92, 0xfdc7], [0xfdf0, 0xfdfc], [0xfe70, 0xfe74], [0xfe76, 0xfefc],
];

// What Unicode 3.2 had assigned outside the BMP (everything else there counts as unassigned, A.1).
const ASSIGNED_32_SUPPLEMENTARY: readonly Range[] = [
  [0x10300, 0x1034a], [0x10400, 0x1044d], [0x1d000, 0x1d7ff], [0x20000, 0x2a6d6], [0x2f800, 0x2fa1d],
  [0xe0001, 0xe007f], [0xf0000, 0x10ffff],
];

const UNASSIGNED_NOW = /^\p{Cn}$/u;
const LETTER_OR_SPACING_MARK = /^[\p{L}\p{Mc}]$/u;

function unassigned32(cp: number): boolean {
  if (cp > 0xffff && !inRanges(cp, ASSIGNED_32_SUPPLEMENTARY)) return true;
  return UNASSIGNED_NOW.test(String.fromCodePoint(cp));
}

/** Approximates D.2 (bidi L): letters and spacing marks that are not right-to-left. */
function lcat(cp: number): boolean {
  if (inRanges(cp, RAND_AL)) return false;
  if ((cp >= 0x0590 && cp <= 0x08ff) || (cp >= 0xfb1d && cp <= 0xfdff) || (cp >= 0xfe70 && cp <= 0xfeff)) return false;
  return LETTER_OR_SPACING_MARK.test(String.fromCodePoint(cp));
}

/** Returns the prepared password, or undefined when PostgreSQL would fall back to the raw password. */
export function saslprep(input: string): string | undefined {
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7f]*$/.test(input)) return input;
  const mapped: number[] = [];
  for (const ch of input) {
    const cp = ch.codePointAt(0)!;
    if (inRanges(cp, NON_ASCII_SPACE)) mapped.push(0x20);
    else if (!inRanges(cp, MAPPED_TO_NOTHING)) mapped.push(cp);
  }
  if (mapped.length === 0) return undefined;
  for (const cp of mapped) {
    if (inRanges(cp, PROHIBITED) || unassigned32(cp)) return undefined;
  }
  if (mapped.some((cp) => inRanges(cp, RAND_AL))) {
    if (mapped.some(lcat)) return undefined;
    if (!inRanges(mapped[0], RAND_AL) || !inRanges(mapped[mapped.length - 1], RAND_AL)) return undefined;
  }
  return String.fromCodePoint(...mapped).normalize('NFKC');
}

/** The bytes PostgreSQL feeds to PBKDF2 for this password. */
export function scramPasswordBytes(password: string): Buffer {
  return Buffer.from(saslprep(password) ?? password, 'utf8');
}
