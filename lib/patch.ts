/**
 * The size of everything the network sees in training: seed patches are 32x32 (paper §3; PAPER.md "Surrogate data"), and so is the
 * network's input. A module of its own so that the training engine does not load the image code.
 *
 * @module
 */

/** Seed patches (and the network's input) are PATCH x PATCH pixels. */
export const PATCH = 32;
