/*
 * crc32c.h - CRC32C (Castagnoli), with the SSE4.2 instruction when the CPU
 * has it and a table otherwise. Both give the same value.
 */
#ifndef MMSB_TLOG_CRC32C_H
#define MMSB_TLOG_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC32C of data, continuing from crc (0 to start). */
uint32_t crc32c(uint32_t crc, const void *data, size_t len);
/* The table version, for tests and CPUs without SSE4.2. */
uint32_t crc32c_portable(uint32_t crc, const void *data, size_t len);
/* x^(8 * bytes) mod the polynomial (reflected): what joins a CRC of a
 * block to the CRC of the bytes after it. For tests of the constants. */
uint32_t crc32c_shift_constant(uint64_t bytes);
/* x^bits mod the polynomial (reflected), for the short inputs' constants. */
uint32_t crc32c_xpow(uint64_t bits);
/* The constants that join three streams of stream_bytes each (8 .. 504, a
 * multiple of 8): which 0 shifts over two streams, 1 over one. */
uint32_t crc32c_short_constant(uint32_t stream_bytes, uint32_t which);
/* crc32c as a CPU with SSE4.2 but no carry-less multiply runs it: one chain
 * for short inputs. For tests. */
uint32_t crc32c_without_clmul(uint32_t crc, const void *data, size_t len);

#endif /* MMSB_TLOG_CRC32C_H */
