#include "kairos_json.h"

#include <simdjson.h>

#include <string>
#include <vector>

struct kj_parser {
    simdjson::dom::parser parser;
    std::vector<kj_token> tokens;
    std::string strings;
    size_t max_depth = 64;
};

namespace {

bool walk(kj_parser *state, simdjson::dom::element element, size_t depth) {
    if (depth > state->max_depth) return false;
    kj_token token{};
    switch (element.type()) {
    case simdjson::dom::element_type::NULL_VALUE:
        token.kind = KJ_NULL;
        state->tokens.push_back(token);
        return true;
    case simdjson::dom::element_type::BOOL:
        token.kind = element.get_bool().value_unsafe() ? KJ_TRUE : KJ_FALSE;
        state->tokens.push_back(token);
        return true;
    case simdjson::dom::element_type::INT64:
        token.kind = KJ_NUMBER;
        token.number = double(element.get_int64().value_unsafe());
        state->tokens.push_back(token);
        return true;
    case simdjson::dom::element_type::UINT64:
        token.kind = KJ_NUMBER;
        token.number = double(element.get_uint64().value_unsafe());
        state->tokens.push_back(token);
        return true;
    case simdjson::dom::element_type::DOUBLE:
        token.kind = KJ_NUMBER;
        token.number = element.get_double().value_unsafe();
        state->tokens.push_back(token);
        return true;
    case simdjson::dom::element_type::STRING: {
        std::string_view text = element.get_string().value_unsafe();
        token.kind = KJ_STRING;
        token.offset = state->strings.size();
        token.count = uint32_t(text.size());
        state->strings.append(text);
        state->tokens.push_back(token);
        return true;
    }
    case simdjson::dom::element_type::ARRAY: {
        simdjson::dom::array array = element.get_array().value_unsafe();
        size_t position = state->tokens.size();
        token.kind = KJ_ARRAY;
        state->tokens.push_back(token);
        uint32_t count = 0;
        for (simdjson::dom::element child : array) {
            if (!walk(state, child, depth + 1)) return false;
            count++;
        }
        state->tokens[position].count = count;
        state->tokens[position].offset = state->tokens.size();
        return true;
    }
    case simdjson::dom::element_type::OBJECT: {
        simdjson::dom::object object = element.get_object().value_unsafe();
        size_t position = state->tokens.size();
        token.kind = KJ_OBJECT;
        state->tokens.push_back(token);
        uint32_t count = 0;
        for (simdjson::dom::key_value_pair field : object) {
            kj_token key{};
            key.kind = KJ_STRING;
            key.offset = state->strings.size();
            key.count = uint32_t(field.key.size());
            state->strings.append(field.key);
            state->tokens.push_back(key);
            if (!walk(state, field.value, depth + 1)) return false;
            count++;
        }
        state->tokens[position].count = count;
        state->tokens[position].offset = state->tokens.size();
        return true;
    }
    }
    return false;
}

}  // namespace

extern "C" {

kj_parser *kj_parser_create(void) { return new (std::nothrow) kj_parser(); }

void kj_parser_destroy(kj_parser *parser) { delete parser; }

int kj_parse(kj_parser *parser, const char *data, size_t length, size_t max_depth, const char **message) {
    parser->tokens.clear();
    parser->strings.clear();
    parser->max_depth = max_depth;
    simdjson::dom::element root;
    // `true`: simdjson copies into its own padded buffer (our buffers carry no padding).
    auto error = parser->parser.parse(data, length, true).get(root);
    if (error) {
        *message = simdjson::error_message(error);
        return int(error);
    }
    if (!walk(parser, root, 0)) {
        *message = "nesting is too deep";
        return -1;
    }
    return 0;
}

const kj_token *kj_tokens(const kj_parser *parser, size_t *count) {
    *count = parser->tokens.size();
    return parser->tokens.data();
}

const char *kj_strings(const kj_parser *parser, size_t *length) {
    *length = parser->strings.size();
    return parser->strings.data();
}

}
