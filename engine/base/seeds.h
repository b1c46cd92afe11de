/*
 * seeds.h - the digests' domain-separation seeds of XXH3-128 (ASCII, read
 * as big-endian: engine/DIGESTS.md). One definition for the engine's
 * digests (engine/digest.c) and the device's (gpu/dev_logic.h).
 */
#ifndef MMSB_BASE_SEEDS_H
#define MMSB_BASE_SEEDS_H

#define SEED_CHUNK 0x4d4d53422d63686bull /* "MMSB-chk" */
#define SEED_NODE 0x4d4d53422d6e6f64ull  /* "MMSB-nod" */
#define SEED_LEAF 0x4d4d53422d6c6566ull  /* "MMSB-lef" */
#define SEED_ROOT 0x4d4d53422d726f6full  /* "MMSB-roo" */

#endif /* MMSB_BASE_SEEDS_H */
