// A plain C interface over simdjson (Debian's libsimdjson-dev), so no Swift target needs C++
// interop: a document is parsed into a flat token tape that Swift walks.
#ifndef KAIROS_JSON_H
#define KAIROS_JSON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    KJ_NULL = 0,
    KJ_FALSE = 1,
    KJ_TRUE = 2,
    KJ_NUMBER = 3,
    KJ_STRING = 4,  // offset and length into the string buffer (UTF-8, unescaped)
    KJ_ARRAY = 5,   // count elements follow; offset is the index of the token after the last
    KJ_OBJECT = 6,  // count (key string, value) pairs follow; offset as for arrays
} kj_kind;

typedef struct {
    uint32_t kind;
    uint32_t count;
    uint64_t offset;
    double number;
} kj_token;

typedef struct kj_parser kj_parser;

kj_parser *kj_parser_create(void);
void kj_parser_destroy(kj_parser *parser);

// Parses `length` bytes. Returns 0 on success; otherwise a nonzero code and `*message` points
// at a static description. Nesting deeper than `max_depth` is an error.
int kj_parse(kj_parser *parser, const char *data, size_t length, size_t max_depth, const char **message);

// The tape of the last successful parse, valid until the next parse.
const kj_token *kj_tokens(const kj_parser *parser, size_t *count);
const char *kj_strings(const kj_parser *parser, size_t *length);

#ifdef __cplusplus
}
#endif

#endif
