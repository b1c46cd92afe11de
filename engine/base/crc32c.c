/*
 * crc32c.c - CRC32C (Castagnoli polynomial 0x1EDC6F41, reflected 0x82F63B78).
 * The SSE4.2 crc32 instruction handles 8 bytes per step, in three chains
 * at once on long inputs; the table (one entry per byte value, generated
 * from the polynomial) is the fallback.
 */
#include <immintrin.h>
#include <string.h>

#include "base.h"
#include "crc32c.h"

static const uint32_t table[256] = {
    0x00000000, 0xf26b8303, 0xe13b70f7, 0x1350f3f4, 0xc79a971f, 0x35f1141c,
    0x26a1e7e8, 0xd4ca64eb, 0x8ad958cf, 0x78b2dbcc, 0x6be22838, 0x9989ab3b,
    0x4d43cfd0, 0xbf284cd3, 0xac78bf27, 0x5e133c24, 0x105ec76f, 0xe235446c,
    0xf165b798, 0x030e349b, 0xd7c45070, 0x25afd373, 0x36ff2087, 0xc494a384,
    0x9a879fa0, 0x68ec1ca3, 0x7bbcef57, 0x89d76c54, 0x5d1d08bf, 0xaf768bbc,
    0xbc267848, 0x4e4dfb4b, 0x20bd8ede, 0xd2d60ddd, 0xc186fe29, 0x33ed7d2a,
    0xe72719c1, 0x154c9ac2, 0x061c6936, 0xf477ea35, 0xaa64d611, 0x580f5512,
    0x4b5fa6e6, 0xb93425e5, 0x6dfe410e, 0x9f95c20d, 0x8cc531f9, 0x7eaeb2fa,
    0x30e349b1, 0xc288cab2, 0xd1d83946, 0x23b3ba45, 0xf779deae, 0x05125dad,
    0x1642ae59, 0xe4292d5a, 0xba3a117e, 0x4851927d, 0x5b016189, 0xa96ae28a,
    0x7da08661, 0x8fcb0562, 0x9c9bf696, 0x6ef07595, 0x417b1dbc, 0xb3109ebf,
    0xa0406d4b, 0x522bee48, 0x86e18aa3, 0x748a09a0, 0x67dafa54, 0x95b17957,
    0xcba24573, 0x39c9c670, 0x2a993584, 0xd8f2b687, 0x0c38d26c, 0xfe53516f,
    0xed03a29b, 0x1f682198, 0x5125dad3, 0xa34e59d0, 0xb01eaa24, 0x42752927,
    0x96bf4dcc, 0x64d4cecf, 0x77843d3b, 0x85efbe38, 0xdbfc821c, 0x2997011f,
    0x3ac7f2eb, 0xc8ac71e8, 0x1c661503, 0xee0d9600, 0xfd5d65f4, 0x0f36e6f7,
    0x61c69362, 0x93ad1061, 0x80fde395, 0x72966096, 0xa65c047d, 0x5437877e,
    0x4767748a, 0xb50cf789, 0xeb1fcbad, 0x197448ae, 0x0a24bb5a, 0xf84f3859,
    0x2c855cb2, 0xdeeedfb1, 0xcdbe2c45, 0x3fd5af46, 0x7198540d, 0x83f3d70e,
    0x90a324fa, 0x62c8a7f9, 0xb602c312, 0x44694011, 0x5739b3e5, 0xa55230e6,
    0xfb410cc2, 0x092a8fc1, 0x1a7a7c35, 0xe811ff36, 0x3cdb9bdd, 0xceb018de,
    0xdde0eb2a, 0x2f8b6829, 0x82f63b78, 0x709db87b, 0x63cd4b8f, 0x91a6c88c,
    0x456cac67, 0xb7072f64, 0xa457dc90, 0x563c5f93, 0x082f63b7, 0xfa44e0b4,
    0xe9141340, 0x1b7f9043, 0xcfb5f4a8, 0x3dde77ab, 0x2e8e845f, 0xdce5075c,
    0x92a8fc17, 0x60c37f14, 0x73938ce0, 0x81f80fe3, 0x55326b08, 0xa759e80b,
    0xb4091bff, 0x466298fc, 0x1871a4d8, 0xea1a27db, 0xf94ad42f, 0x0b21572c,
    0xdfeb33c7, 0x2d80b0c4, 0x3ed04330, 0xccbbc033, 0xa24bb5a6, 0x502036a5,
    0x4370c551, 0xb11b4652, 0x65d122b9, 0x97baa1ba, 0x84ea524e, 0x7681d14d,
    0x2892ed69, 0xdaf96e6a, 0xc9a99d9e, 0x3bc21e9d, 0xef087a76, 0x1d63f975,
    0x0e330a81, 0xfc588982, 0xb21572c9, 0x407ef1ca, 0x532e023e, 0xa145813d,
    0x758fe5d6, 0x87e466d5, 0x94b49521, 0x66df1622, 0x38cc2a06, 0xcaa7a905,
    0xd9f75af1, 0x2b9cd9f2, 0xff56bd19, 0x0d3d3e1a, 0x1e6dcdee, 0xec064eed,
    0xc38d26c4, 0x31e6a5c7, 0x22b65633, 0xd0ddd530, 0x0417b1db, 0xf67c32d8,
    0xe52cc12c, 0x1747422f, 0x49547e0b, 0xbb3ffd08, 0xa86f0efc, 0x5a048dff,
    0x8ecee914, 0x7ca56a17, 0x6ff599e3, 0x9d9e1ae0, 0xd3d3e1ab, 0x21b862a8,
    0x32e8915c, 0xc083125f, 0x144976b4, 0xe622f5b7, 0xf5720643, 0x07198540,
    0x590ab964, 0xab613a67, 0xb831c993, 0x4a5a4a90, 0x9e902e7b, 0x6cfbad78,
    0x7fab5e8c, 0x8dc0dd8f, 0xe330a81a, 0x115b2b19, 0x020bd8ed, 0xf0605bee,
    0x24aa3f05, 0xd6c1bc06, 0xc5914ff2, 0x37faccf1, 0x69e9f0d5, 0x9b8273d6,
    0x88d28022, 0x7ab90321, 0xae7367ca, 0x5c18e4c9, 0x4f48173d, 0xbd23943e,
    0xf36e6f75, 0x0105ec76, 0x12551f82, 0xe03e9c81, 0x34f4f86a, 0xc69f7b69,
    0xd5cf889d, 0x27a40b9e, 0x79b737ba, 0x8bdcb4b9, 0x988c474d, 0x6ae7c44e,
    0xbe2da0a5, 0x4c4623a6, 0x5f16d052, 0xad7d5351,
};

uint32_t crc32c_portable(uint32_t crc, const void *data, size_t len) {
    ASSERT(data != NULL || len == 0);
    const uint8_t *p = data;
    crc = ~crc;
    for (size_t i = 0; i < len; i++) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

/* ---- combining ----------------------------------------------------------------------
 * The crc32 instruction takes 3 cycles and the CPU can start one per cycle,
 * so one dependent chain uses a third of it. Long inputs run three chains
 * over three adjacent blocks and join them: the register after block A then
 * B is reg(A) * x^(8 |B|) + reg(B started at 0), mod the polynomial (CRC is
 * linear). Polynomials here are in the reflected order the instruction
 * uses: bit 31 is x^0. */

enum {
    CRC_BLOCK_LARGE = 4096, /* bytes per chain for long inputs */
    CRC_BLOCK_SMALL = 512,  /* and for medium ones */
};
static const uint32_t CRC_POLY_REFLECTED = 0x82F63B78u;
static const uint32_t CRC_X0 = 0x80000000u; /* the polynomial 1 */

/* x^(8 * block) mod P for the two block sizes; test_kernels recomputes them
 * with crc32c_shift_constant. */
static const uint32_t CRC_SHIFT_LARGE = 0x35d73a62u;
static const uint32_t CRC_SHIFT_SMALL = 0x74c360a4u;

/* a * b mod P: 32 shift-and-add steps. */
static uint32_t crc_mulmod(uint32_t a, uint32_t b) {
    uint32_t product = 0;
    for (uint32_t bit = CRC_X0; bit != 0; bit >>= 1) {
        if (a & bit) product ^= b;
        b = (b & 1) ? (b >> 1) ^ CRC_POLY_REFLECTED : b >> 1;
    }
    return product;
}

uint32_t crc32c_xpow(uint64_t bits) {
    uint32_t result = CRC_X0, power = CRC_X0 >> 1; /* power: x^(2^k) */
    for (; bits != 0; bits >>= 1) { /* at most 64 steps */
        if (bits & 1) result = crc_mulmod(result, power);
        power = crc_mulmod(power, power);
    }
    return result;
}

uint32_t crc32c_shift_constant(uint64_t bytes) {
    ASSERT(bytes <= UINT64_MAX / 8);
    return crc32c_xpow(8 * bytes);
}

__attribute__((target("sse4.2"))) static uint64_t crc_chain(uint64_t c, const uint8_t *p, size_t len) {
    ASSERT(len % 8 == 0);
    for (size_t i = 0; i < len; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, sizeof v);
        c = _mm_crc32_u64(c, v);
    }
    return c;
}

/* Three chains over three blocks of `block` bytes each, joined. */
__attribute__((target("sse4.2"))) static uint64_t crc_three(uint64_t c, const uint8_t *p, size_t block,
                                                            uint32_t shift) {
    ASSERT(block % 8 == 0 && block >= 8);
    uint64_t b = 0, d = 0;
    const uint8_t *q = p + block, *r = p + 2 * block;
    for (size_t i = 0; i < block; i += 8) {
        uint64_t va, vb, vc;
        memcpy(&va, p + i, 8);
        memcpy(&vb, q + i, 8);
        memcpy(&vc, r + i, 8);
        c = _mm_crc32_u64(c, va);
        b = _mm_crc32_u64(b, vb);
        d = _mm_crc32_u64(d, vc);
    }
    uint32_t joined = crc_mulmod((uint32_t)c, shift) ^ (uint32_t)b;
    return crc_mulmod(joined, shift) ^ (uint32_t)d;
}

/* ---- short inputs ------------------------------------------------------------------
 *
 * A log record is a few dozen to a few hundred bytes, and one chain of CRC
 * instructions waits on each step's latency. Below 3 * CRC_BLOCK_SMALL bytes
 * the input is cut into three streams of n bytes (a multiple of 8) run side
 * by side and joined by carry-less multiplication: shifting a CRC c over n
 * more bytes is c * x^(8n) mod P, and crc32(0, clmul(c, K)) is c * K * x^33
 * mod P, so K = x^(8n - 33). SHORT_SHIFT[n / 8 - 1] holds K for 2n and for
 * n bytes; test_kernels recomputes them with crc32c_xpow. */
enum { CRC_SHORT_MIN = 24, CRC_SHORT_STREAM_MAX = (3 * CRC_BLOCK_SMALL - 1) / 24 * 8 };
_Static_assert(CRC_SHORT_STREAM_MAX == 504, "the table below has a row per 8 bytes up to 504");
static const uint32_t SHORT_SHIFT[CRC_SHORT_STREAM_MAX / 8][2] = {
    {0x493c7d27u, 0x00000001u}, {0xba4fc28eu, 0x493c7d27u}, {0xddc0152bu, 0xf20c0dfeu},
    {0x9e4addf8u, 0xba4fc28eu}, {0x39d3b296u, 0x3da6d0cbu}, {0x0715ce53u, 0xddc0152bu},
    {0x47db8317u, 0x1c291d04u}, {0x0d3b6092u, 0x9e4addf8u}, {0xc96cfdc0u, 0x740eef02u},
    {0x878a92a7u, 0x39d3b296u}, {0xdaece73eu, 0x083a6eecu}, {0xab7aff2au, 0x0715ce53u},
    {0x2162d385u, 0xc49f4f67u}, {0x83348832u, 0x47db8317u}, {0x299847d5u, 0x2ad91c30u},
    {0xb9e02b86u, 0x0d3b6092u}, {0x18b33a4eu, 0x6992cea2u}, {0xb6dd949bu, 0xc96cfdc0u},
    {0x78d9ccb7u, 0x7e908048u}, {0xbac2fd7bu, 0x878a92a7u}, {0xa60ce07bu, 0x1b3d8f29u},
    {0xce7f39f4u, 0xdaece73eu}, {0x61d82e56u, 0xf1d0f55eu}, {0xd270f1a2u, 0xab7aff2au},
    {0xc619809du, 0xa87ab8a8u}, {0x2b3cac5du, 0x2162d385u}, {0x65863b64u, 0x8462d800u},
    {0x1b03397fu, 0x83348832u}, {0xebb883bdu, 0x71d111a8u}, {0xb3e32c28u, 0x299847d5u},
    {0x064f7f26u, 0xffd852c6u}, {0xdd7e3b0cu, 0xb9e02b86u}, {0xf285651cu, 0xdcb17aa4u},
    {0x10746f3cu, 0x18b33a4eu}, {0xc7a68855u, 0xf37c5aeeu}, {0x271d9844u, 0xb6dd949bu},
    {0x8e766a0cu, 0x6051d5a2u}, {0x93a5f730u, 0x78d9ccb7u}, {0x6cb08e5cu, 0x18b0d4ffu},
    {0x6b749fb2u, 0xbac2fd7bu}, {0x1393e203u, 0x21f3d99cu}, {0xcec3662eu, 0xa60ce07bu},
    {0x96c515bbu, 0x8f158014u}, {0xe6fc4e6au, 0xce7f39f4u}, {0x8227bb8au, 0xa00457f7u},
    {0xb0cd4768u, 0x61d82e56u}, {0x39c7ff35u, 0x8d6d2c43u}, {0xd7a4825cu, 0xd270f1a2u},
    {0x0ab3844bu, 0x00ac29cfu}, {0x0167d312u, 0xc619809du}, {0xf6076544u, 0xe9adf796u},
    {0x26f6a60au, 0x2b3cac5du}, {0xa741c1bfu, 0x96638b34u}, {0x98d8d9cbu, 0x65863b64u},
    {0x49c3cc9cu, 0xe0e9f351u}, {0x68bce87au, 0x1b03397fu}, {0x57a3d037u, 0x9af01f2du},
    {0x6956fc3bu, 0xebb883bdu}, {0x42d98888u, 0x2cff42cfu}, {0x3771e98fu, 0xb3e32c28u},
    {0xb42ae3d9u, 0x88f25a3au}, {0x2178513au, 0x064f7f26u}, {0xe0ac139eu, 0x4e36f0b0u},
};

uint32_t crc32c_short_constant(uint32_t stream_bytes, uint32_t which) {
    ASSERT(stream_bytes >= 8 && stream_bytes <= CRC_SHORT_STREAM_MAX && stream_bytes % 8 == 0 && which < 2);
    return SHORT_SHIFT[stream_bytes / 8 - 1][which];
}

__attribute__((target("sse4.2,pclmul"))) static uint64_t crc_shift(uint64_t c, uint32_t k) {
    __m128i product = _mm_clmulepi64_si128(_mm_cvtsi64_si128((int64_t)c), _mm_cvtsi32_si128((int32_t)k), 0);
    return _mm_crc32_u64(0, (uint64_t)_mm_cvtsi128_si64(product));
}

/* len in [CRC_SHORT_MIN, 3 * CRC_BLOCK_SMALL): three streams, then the
 * rest (under 24 bytes) by words. */
__attribute__((target("sse4.2,pclmul"))) static uint64_t crc_short(uint64_t c, const uint8_t *p, size_t len,
                                                                  size_t *done) {
    ASSERT(len >= CRC_SHORT_MIN && len < 3 * CRC_BLOCK_SMALL);
    size_t n = len / 24 * 8;
    ASSERT(n >= 8 && n <= CRC_SHORT_STREAM_MAX);
    uint64_t b = 0, d = 0;
    for (size_t i = 0; i < n; i += 8) {
        uint64_t va, vb, vc;
        memcpy(&va, p + i, 8);
        memcpy(&vb, p + n + i, 8);
        memcpy(&vc, p + 2 * n + i, 8);
        c = _mm_crc32_u64(c, va);
        b = _mm_crc32_u64(b, vb);
        d = _mm_crc32_u64(d, vc);
    }
    const uint32_t *k = SHORT_SHIFT[n / 8 - 1];
    *done = 3 * n;
    return crc_shift(c, k[0]) ^ crc_shift(b, k[1]) ^ d;
}

/* The last 0 .. 7 bytes: at most three steps. */
__attribute__((target("sse4.2"))) static uint32_t crc_tail(uint32_t c, const uint8_t *p, size_t len) {
    ASSERT(len < 8);
    if (len & 4) {
        uint32_t v;
        memcpy(&v, p, 4);
        c = _mm_crc32_u32(c, v);
        p += 4;
    }
    if (len & 2) {
        uint16_t v;
        memcpy(&v, p, 2);
        c = _mm_crc32_u16(c, v);
        p += 2;
    }
    if (len & 1) c = _mm_crc32_u8(c, *p);
    return c;
}

__attribute__((target("sse4.2,pclmul"))) static uint32_t crc32c_sse42(uint32_t crc, const void *data,
                                                                     size_t len, bool clmul) {
    ASSERT(data != NULL || len == 0);
    const uint8_t *p = data;
    uint64_t c = ~crc & 0xFFFFFFFFu;
    for (; len >= 3 * CRC_BLOCK_LARGE; p += 3 * CRC_BLOCK_LARGE, len -= 3 * CRC_BLOCK_LARGE)
        c = crc_three(c, p, CRC_BLOCK_LARGE, CRC_SHIFT_LARGE);
    for (; len >= 3 * CRC_BLOCK_SMALL; p += 3 * CRC_BLOCK_SMALL, len -= 3 * CRC_BLOCK_SMALL)
        c = crc_three(c, p, CRC_BLOCK_SMALL, CRC_SHIFT_SMALL);
    if (clmul && len >= CRC_SHORT_MIN) {
        size_t done;
        c = crc_short(c, p, len, &done);
        p += done;
        len -= done;
    }
    size_t words = len & ~(size_t)7;
    c = crc_chain(c, p, words);
    return ~crc_tail((uint32_t)c, p + words, len - words);
}

uint32_t crc32c(uint32_t crc, const void *data, size_t len) {
    ASSERT(data != NULL || len == 0);
    if (__builtin_cpu_supports("sse4.2")) return crc32c_sse42(crc, data, len, __builtin_cpu_supports("pclmul"));
    return crc32c_portable(crc, data, len);
}

uint32_t crc32c_without_clmul(uint32_t crc, const void *data, size_t len) {
    ASSERT(data != NULL || len == 0);
    if (__builtin_cpu_supports("sse4.2")) return crc32c_sse42(crc, data, len, false);
    return crc32c_portable(crc, data, len);
}
