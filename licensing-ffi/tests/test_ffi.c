/*
 * The C ABI's test suite: every exported function, every error path, from C.
 *
 *   test_ffi FIXTURES_DIR STORE_DIR
 *
 * FIXTURES_DIR is made by scripts/test-ffi.sh with licensing-server: keys/ (private.pem,
 * public.pem, jwks.json), other/ (a second key pair), subscription.jwt, trial.jwt,
 * perpetual.jwt, site.jwt (from examples/licenses/) and node_locked.jwt (bound to the
 * fingerprint of override value "ffi-test-node" salted with com.example.cad). STORE_DIR is an
 * empty directory for the license store.
 *
 * Every expectation is checked and counted; the last line is "N passed, N failed" and the exit
 * status is non-zero when any failed. Run under valgrind, the suite also proves every handle,
 * string and buffer it receives is freed (it frees each exactly once: freeing twice is
 * undefined behaviour by contract, so the suite only shows the documented NULL-after-free
 * pattern).
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "licensing.h"

#define PRODUCT "com.example.cad"
/* 2027-01-15: inside every sample license. */
#define NOW INT64_C(1800000000)
/* nbf and exp of the sample licenses. */
#define NBF INT64_C(1767225600)
#define EXP INT64_C(4070908800)
/* grace_period of subscription.json. */
#define SUB_GRACE INT64_C(1209600)
/* maintenance_until of perpetual.json. */
#define MAINTENANCE_UNTIL INT64_C(1893456000)
/* exp of the cloud_sync feature in subscription.json. */
#define CLOUD_SYNC_EXP INT64_C(1893456000)

static int passed;
static int failed;
static const char *section = "";

static void check_at(int ok, const char *what, int line) {
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("FAIL [%s] line %d: %s\n", section, line, what);
    }
}

#define CHECK(cond) check_at((cond) ? 1 : 0, #cond, __LINE__)

static void check_rc_at(lic_result got, lic_result want, const char *call, int line) {
    if (got == want) {
        passed++;
    } else {
        char text[512];
        size_t len = 0;
        if (lic_last_error(text, sizeof text, &len) != LIC_OK) {
            text[0] = '\0';
        }
        failed++;
        printf("FAIL [%s] line %d: %s returned %u (%s), expected %u; last error: %s\n", section,
               line, call, (unsigned)got, lic_result_message(got), (unsigned)want, text);
    }
}

#define CHECK_RC(call, want) check_rc_at((call), (want), #call, __LINE__)
#define CHECK_OK(call) CHECK_RC(call, LIC_OK)

static void begin(const char *name) {
    section = name;
    printf("-- %s\n", name);
}

/* ---------------------------------------------------------------------------------------- */
/* helpers */

typedef struct {
    char *data;
    size_t len;
} text_file;

static text_file read_file(const char *dir, const char *name) {
    text_file file = {NULL, 0};
    char path[4096];
    FILE *f;
    long size;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(2);
    }
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "cannot size %s\n", path);
        exit(2);
    }
    file.data = malloc((size_t)size + 1);
    if (file.data == NULL || fread(file.data, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(2);
    }
    fclose(f);
    file.len = (size_t)size;
    /* Tokens are files ending in a newline; lic_verifier_check does not trim. */
    while (file.len > 0 && (file.data[file.len - 1] == '\n' || file.data[file.len - 1] == '\r')) {
        file.len--;
    }
    file.data[file.len] = '\0';
    return file;
}

static void free_file(text_file *file) {
    free(file->data);
    file->data = NULL;
    file->len = 0;
}

/* Whether the calling thread's last error contains needle. */
static int last_error_contains(const char *needle) {
    char text[1024];
    size_t len = 0;
    return lic_last_error(text, sizeof text, &len) == LIC_OK && strstr(text, needle) != NULL;
}

static lic_trust_store *store_from(const text_file *doc) {
    lic_trust_store *store = NULL;
    CHECK_OK(lic_trust_store_new(&store));
    CHECK_OK(lic_trust_store_add_document(store, doc->data, doc->len));
    return store;
}

static lic_verifier *verifier_from(const text_file *doc, const char *product) {
    lic_trust_store *store = store_from(doc);
    lic_verifier *verifier = NULL;
    CHECK_OK(lic_verifier_new(store, product, &verifier));
    lic_trust_store_free(store); /* the verifier keeps a copy */
    return verifier;
}

static lic_context *context_at(int64_t now) {
    lic_context *context = NULL;
    CHECK_OK(lic_context_new(now, &context));
    return context;
}

/* Verifies and evaluates; returns the verdict (caller frees). */
static lic_verdict *check(const lic_verifier *verifier, const text_file *token,
                          const lic_context *context) {
    lic_verdict *verdict = NULL;
    CHECK_OK(lic_verifier_check(verifier, token->data, token->len, context, &verdict));
    CHECK(verdict != NULL);
    return verdict;
}

static lic_status status_of(const lic_verdict *verdict) {
    lic_status status = (lic_status)9999;
    CHECK_OK(lic_verdict_status(verdict, &status));
    return status;
}

/* The verdict's status for token at now with no other context; frees everything. */
static lic_status status_at(const lic_verifier *verifier, const text_file *token, int64_t now) {
    lic_context *context = context_at(now);
    lic_verdict *verdict = check(verifier, token, context);
    lic_status status = status_of(verdict);
    lic_verdict_free(verdict);
    lic_context_free(context);
    return status;
}

static int string_is(char *owned, const char *want) {
    int ok = owned != NULL && want != NULL && strcmp(owned, want) == 0;
    if (!ok) {
        printf("  got \"%s\", expected \"%s\"\n", owned ? owned : "(null)", want ? want : "(null)");
    }
    lic_string_free(owned);
    return ok;
}

static int string_contains(char *owned, const char *needle) {
    int ok = owned != NULL && strstr(owned, needle) != NULL;
    if (!ok) {
        printf("  got \"%s\", expected to contain \"%s\"\n", owned ? owned : "(null)", needle);
    }
    lic_string_free(owned);
    return ok;
}

/* ---------------------------------------------------------------------------------------- */

static void test_version_and_static_strings(void) {
    uint32_t i;
    begin("version, result messages, status and model names");
    CHECK(strcmp(lic_version(), LIC_VERSION_STRING) == 0);
    {
        char built[64];
        snprintf(built, sizeof built, "%d.%d.%d", LIC_VERSION_MAJOR, LIC_VERSION_MINOR,
                 LIC_VERSION_PATCH);
        CHECK(strcmp(built, LIC_VERSION_STRING) == 0);
    }

    for (i = LIC_OK; i <= LIC_CHECKED_IN; i++) {
        CHECK(strcmp(lic_result_message(i), "unknown result code") != 0);
    }
    CHECK(strcmp(lic_result_message(LIC_OK), "ok") == 0);
    CHECK(strcmp(lic_result_message(LIC_CHECKED_IN + 1), "unknown result code") == 0);
    CHECK(strcmp(lic_result_message(UINT32_MAX), "unknown result code") == 0);

    {
        static const char *const names[] = {
            "valid", "valid_in_grace", "expired", "not_yet_valid", "trial_expired",
            "signature_invalid", "unknown_key", "malformed", "unsupported_algorithm",
            "wrong_token_type", "invalid_claims", "product_mismatch", "version_not_entitled",
            "feature_not_entitled", "feature_expired", "site_restricted", "fingerprint_mismatch",
            "virtual_machine_not_allowed", "clock_tampered", "no_license", "revoked",
            "suspended", "check_in_required", "lease_expired", "lease_required",
            "machine_not_activated"};
        const size_t count = sizeof names / sizeof names[0];
        CHECK(count == LIC_STATUS_MACHINE_NOT_ACTIVATED + 1);
        CHECK(LIC_STATUS_MACHINE_NOT_ACTIVATED == 25);
        CHECK(!lic_status_is_usable(LIC_STATUS_MACHINE_NOT_ACTIVATED));
        CHECK(LIC_STATUS_REVOKED == 20 && LIC_STATUS_SUSPENDED == 21);
        /* The lease statuses. */
        CHECK(LIC_STATUS_LEASE_EXPIRED == 23 && LIC_STATUS_LEASE_REQUIRED == 24);
        CHECK(strcmp(lic_status_name(LIC_STATUS_LEASE_EXPIRED), "lease_expired") == 0);
        CHECK(strcmp(lic_status_name(LIC_STATUS_LEASE_REQUIRED), "lease_required") == 0);
        CHECK(!lic_status_is_usable(LIC_STATUS_LEASE_EXPIRED));
        CHECK(strcmp(lic_status_name(LIC_STATUS_MACHINE_NOT_ACTIVATED + 1), "unknown") == 0);
        for (i = 0; i < count; i++) {
            CHECK(strcmp(lic_status_name(i), names[i]) == 0);
            CHECK(strcmp(lic_status_message(i), "Unknown license status.") != 0);
            CHECK(lic_status_is_usable(i) == (i == LIC_STATUS_VALID || i == LIC_STATUS_VALID_IN_GRACE));
        }
        CHECK(strcmp(lic_status_name((uint32_t)count), "unknown") == 0);
        CHECK(strcmp(lic_status_message((uint32_t)count), "Unknown license status.") == 0);
        CHECK(!lic_status_is_usable((uint32_t)count));
        CHECK(strcmp(lic_status_name(LIC_STATUS_CLOCK_TAMPERED), "clock_tampered") == 0);
        /* The end-user sentences are the core's Status::message, the same in every binding. */
        CHECK(strcmp(lic_status_message(LIC_STATUS_NO_LICENSE), "No license is installed.") == 0);
        CHECK(strcmp(lic_status_message(LIC_STATUS_VALID_IN_GRACE),
                     "The license has expired but is inside its grace period; please renew.") == 0);
        CHECK(strcmp(lic_status_message(LIC_STATUS_MACHINE_NOT_ACTIVATED),
                     "This machine is not activated on the license; activate it or transfer the "
                     "license to it.") == 0);
    }
    {
        static const char *const models[] = {"perpetual", "subscription", "trial",
                                             "floating",  "node_locked",  "site"};
        for (i = 0; i < 6; i++) {
            CHECK(strcmp(lic_model_name(i), models[i]) == 0);
        }
        CHECK(LIC_MODEL_SITE == 5);
        CHECK(strcmp(lic_model_name(6), "unknown") == 0);
    }
    CHECK(LIC_SCOPE_USER == 0 && LIC_SCOPE_MACHINE == 1);
    CHECK(lic_unix_now() > NBF);
}

static void test_trust_store(const char *fixtures) {
    text_file pem = read_file(fixtures, "keys/public.pem");
    text_file jwks = read_file(fixtures, "keys/jwks.json");
    text_file private_pem = read_file(fixtures, "keys/private.pem");
    text_file other = read_file(fixtures, "other/public.pem");
    lic_trust_store *store = NULL;
    size_t count = 99;
    char *kid = NULL;
    char message[512];
    size_t len = 0;
    static const char bad_pem[] =
        "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n";
    static const char not_utf8[] = {'-', '-', (char)0xff, (char)0xfe, '-', '\0'};
    static const char weak_jwk[] =
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}";

    begin("trust store");
    CHECK_RC(lic_trust_store_new(NULL), LIC_NULL_ARGUMENT);
    CHECK(last_error_contains("out_store"));
    CHECK_OK(lic_trust_store_new(&store));
    CHECK_OK(lic_trust_store_key_count(store, &count));
    CHECK(count == 0);

    CHECK_OK(lic_trust_store_add_document(store, pem.data, pem.len));
    CHECK_OK(lic_trust_store_key_count(store, &count));
    CHECK(count == 1);
    CHECK_OK(lic_trust_store_kid(store, 0, &kid));
    CHECK(kid != NULL && strlen(kid) == 43 && strstr(jwks.data, kid) != NULL);
    lic_string_free(kid);
    kid = NULL;
    CHECK_RC(lic_trust_store_kid(store, 1, &kid), LIC_INDEX_OUT_OF_RANGE);
    CHECK(kid == NULL); /* out-parameters are written only on success */
    CHECK_RC(lic_trust_store_kid(store, 0, NULL), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_trust_store_key_count(store, NULL), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_trust_store_key_count(NULL, &count), LIC_NULL_ARGUMENT);

    /* The same key again: refused, store unchanged, reason on the handle and the thread. */
    CHECK_RC(lic_trust_store_add_document(store, jwks.data, jwks.len), LIC_KEY_REJECTED);
    CHECK_OK(lic_trust_store_last_error(store, message, sizeof message, &len));
    CHECK(strstr(message, "already in the trust store") != NULL && len == strlen(message));
    CHECK(last_error_contains("already in the trust store"));
    CHECK_OK(lic_trust_store_key_count(store, &count));
    CHECK(count == 1);

    /* A second, different key: two keys. */
    CHECK_OK(lic_trust_store_add_document(store, other.data, other.len));
    CHECK_OK(lic_trust_store_key_count(store, &count));
    CHECK(count == 2);

    /* Bad documents. */
    CHECK_RC(lic_trust_store_add_document(store, bad_pem, strlen(bad_pem)), LIC_KEY_REJECTED);
    CHECK_OK(lic_trust_store_last_error(store, message, sizeof message, &len));
    CHECK(strstr(message, "not an Ed25519") != NULL);
    CHECK_RC(lic_trust_store_add_document(store, private_pem.data, private_pem.len),
             LIC_KEY_REJECTED);
    CHECK_RC(lic_trust_store_add_document(store, "", 0), LIC_KEY_REJECTED);
    CHECK_RC(lic_trust_store_add_document(store, "{\"keys\":[]}", 11), LIC_KEY_REJECTED);
    CHECK_RC(lic_trust_store_add_document(store, weak_jwk, strlen(weak_jwk)), LIC_KEY_REJECTED);
    CHECK_OK(lic_trust_store_last_error(store, message, sizeof message, &len));
    CHECK(strstr(message, "weak") != NULL);
    CHECK_RC(lic_trust_store_add_document(store, not_utf8, strlen(not_utf8)), LIC_INVALID_UTF8);
    CHECK_RC(lic_trust_store_add_document(store, NULL, 10), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_trust_store_add_document(NULL, pem.data, pem.len), LIC_NULL_ARGUMENT);
    /* A length is honoured: half a PEM is not a key. */
    CHECK_RC(lic_trust_store_add_document(store, pem.data, pem.len / 2), LIC_KEY_REJECTED);
    CHECK_OK(lic_trust_store_key_count(store, &count));
    CHECK(count == 2);
    lic_trust_store_free(store);

    /* JWK Set. */
    store = NULL;
    CHECK_OK(lic_trust_store_new(&store));
    CHECK_OK(lic_trust_store_add_document(store, jwks.data, jwks.len));
    CHECK_OK(lic_trust_store_key_count(store, &count));
    CHECK(count == 1);
    lic_trust_store_free(store);

    free_file(&pem);
    free_file(&jwks);
    free_file(&private_pem);
    free_file(&other);
}

static void test_last_error_buffers(const char *fixtures) {
    text_file pem = read_file(fixtures, "keys/public.pem");
    lic_trust_store *store = NULL;
    char small[4] = {'x', 'x', 'x', 'x'};
    char *exact;
    size_t len = 0, needed = 0;
    static const char bad[] = "nonsense";

    begin("last-error messages and too-small buffers");
    CHECK_OK(lic_trust_store_new(&store));
    /* No failure yet on this handle: "". */
    CHECK_OK(lic_trust_store_last_error(store, small, sizeof small, &len));
    CHECK(len == 0 && small[0] == '\0');

    CHECK_RC(lic_trust_store_add_document(store, bad, strlen(bad)), LIC_KEY_REJECTED);
    /* Size query. */
    CHECK_RC(lic_trust_store_last_error(store, NULL, 0, &needed), LIC_BUFFER_TOO_SMALL);
    CHECK(needed > 10);
    /* Too small: only the length is written, the buffer is untouched. */
    small[0] = 'x';
    len = 0;
    CHECK_RC(lic_trust_store_last_error(store, small, sizeof small, &len), LIC_BUFFER_TOO_SMALL);
    CHECK(len == needed && small[0] == 'x');
    /* Exactly the length: still too small (no room for the NUL). */
    exact = malloc(needed + 1);
    CHECK(exact != NULL);
    if (exact != NULL) {
        CHECK_RC(lic_trust_store_last_error(store, exact, needed, &len), LIC_BUFFER_TOO_SMALL);
        CHECK_OK(lic_trust_store_last_error(store, exact, needed + 1, &len));
        CHECK(len == needed && strlen(exact) == needed && exact[needed] == '\0');
        free(exact);
    }
    /* Reading the error does not change it; the thread's copy says the same. */
    CHECK_RC(lic_trust_store_last_error(store, NULL, 0, &len), LIC_BUFFER_TOO_SMALL);
    CHECK(len == needed);
    CHECK_RC(lic_last_error(NULL, 0, &len), LIC_BUFFER_TOO_SMALL);
    CHECK(len == needed);
    /* Bad buffer arguments. */
    CHECK_RC(lic_trust_store_last_error(store, small, sizeof small, NULL), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_trust_store_last_error(store, NULL, 8, &len), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_trust_store_last_error(NULL, small, sizeof small, &len), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_last_error(small, sizeof small, NULL), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_last_error(NULL, 1, &len), LIC_NULL_ARGUMENT);
    /* A successful call does not clear the message (errno-like). */
    CHECK_OK(lic_trust_store_add_document(store, pem.data, pem.len));
    CHECK_RC(lic_trust_store_last_error(store, NULL, 0, &len), LIC_BUFFER_TOO_SMALL);
    CHECK(len == needed);
    /* NULL-argument failures name the argument. */
    CHECK_RC(lic_trust_store_kid(store, 0, NULL), LIC_NULL_ARGUMENT);
    CHECK(last_error_contains("`out_kid` is NULL"));
    lic_trust_store_free(store);
    free_file(&pem);
}

static void test_context(void) {
    lic_context *context = NULL;
    lic_fingerprint *fingerprint = NULL;
    char message[512];
    size_t len = 0;
    static const char not_utf8[] = {(char)0xc3, (char)0x28, '\0'};

    begin("context");
    CHECK_RC(lic_context_new(NOW, NULL), LIC_NULL_ARGUMENT);
    CHECK_OK(lic_context_new(NOW, &context));
    CHECK_OK(lic_context_set_now(context, NOW + 1));
    CHECK_OK(lic_context_set_not_before_leeway(context, 30));
    CHECK_OK(lic_context_set_version(context, "2.4.0"));
    CHECK_OK(lic_context_set_version(context, NULL));
    CHECK_RC(lic_context_set_version(context, "two point four"), LIC_INVALID_ARGUMENT);
    CHECK_OK(lic_context_last_error(context, message, sizeof message, &len));
    CHECK(strstr(message, "not semver") != NULL);
    /* The core's version rule: strict semver, surrounding whitespace refused (as in uniffi). */
    CHECK_RC(lic_context_set_version(context, " 2.4.0"), LIC_INVALID_ARGUMENT);
    CHECK_RC(lic_context_set_version(context, "2.4.0\n"), LIC_INVALID_ARGUMENT);
    CHECK_OK(lic_context_last_error(context, message, sizeof message, &len));
    CHECK(strstr(message, "`2.4.0\\n` is not semver") != NULL);
    CHECK_RC(lic_context_set_version(context, not_utf8), LIC_INVALID_UTF8);
    CHECK_OK(lic_context_set_release_date(context, true, NOW));
    CHECK_OK(lic_context_set_release_date(context, false, 0));
    CHECK_OK(lic_context_add_feature(context, "core"));
    CHECK_RC(lic_context_add_feature(context, NULL), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_context_add_feature(context, not_utf8), LIC_INVALID_UTF8);
    CHECK_OK(lic_context_add_attribute(context, "country", "DE"));
    CHECK_OK(lic_context_add_attribute(context, "country", "AT"));
    CHECK_RC(lic_context_add_attribute(context, "country", NULL), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_context_add_attribute(context, NULL, "DE"), LIC_NULL_ARGUMENT);
    CHECK_OK(lic_fingerprint_with_override(PRODUCT, "ffi-test-node", &fingerprint));
    CHECK_OK(lic_context_set_fingerprint(context, fingerprint));
    lic_fingerprint_free(fingerprint); /* the context keeps a copy */
    CHECK_OK(lic_context_set_fingerprint(context, NULL));
    CHECK_RC(lic_context_set_now(NULL, NOW), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_context_set_not_before_leeway(NULL, 0), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_context_set_version(NULL, "1.0.0"), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_context_set_release_date(NULL, true, 0), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_context_add_feature(NULL, "x"), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_context_add_attribute(NULL, "a", "b"), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_context_set_fingerprint(NULL, NULL), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_context_last_error(NULL, message, sizeof message, &len), LIC_NULL_ARGUMENT);
    lic_context_free(context);
}

static void test_valid_subscription(const char *fixtures) {
    text_file pem = read_file(fixtures, "keys/public.pem");
    text_file token = read_file(fixtures, "subscription.jwt");
    lic_verifier *verifier = verifier_from(&pem, PRODUCT);
    lic_context *context = context_at(NOW);
    lic_verdict *verdict;
    lic_feature *feature = NULL;
    char *text = NULL;
    bool has = false;
    int64_t value = -1;
    uint64_t limit = 0;
    size_t count = 0;
    lic_model model = LIC_MODEL_SITE;
    lic_status status = LIC_STATUS_NO_LICENSE;
    char message[512];
    size_t len = 0;

    begin("verify: a valid subscription and its verdict");
    CHECK_OK(lic_context_set_version(context, "2.4.0"));
    CHECK_OK(lic_context_add_feature(context, "export_step"));
    CHECK_OK(lic_context_add_feature(context, "cloud_sync"));
    verdict = check(verifier, &token, context);

    CHECK(status_of(verdict) == LIC_STATUS_VALID);
    CHECK(lic_verdict_is_usable(verdict));
    CHECK_OK(lic_verdict_reason(verdict, &text));
    CHECK(string_contains(text, "license valid for"));
    CHECK_OK(lic_verdict_license_id(verdict, &text));
    CHECK(string_is(text, "lic_subscription_0001"));
    CHECK_OK(lic_verdict_customer(verdict, &text));
    CHECK(string_is(text, "Globex Corp"));
    CHECK_OK(lic_verdict_model(verdict, &has, &model));
    CHECK(has && model == LIC_MODEL_SUBSCRIPTION);
    CHECK_OK(lic_verdict_expires_at(verdict, &has, &value));
    CHECK(has && value == EXP);
    CHECK_OK(lic_verdict_grace_ends_at(verdict, &has, &value));
    CHECK(has && value == EXP + SUB_GRACE);
    CHECK_OK(lic_verdict_time_left(verdict, &has, &value));
    CHECK(has && value == EXP + SUB_GRACE - NOW);
    CHECK_OK(lic_verdict_grace_left(verdict, &has, &value));
    CHECK(!has && value == 0);

    /* The features the context asked about, in order. */
    CHECK_OK(lic_verdict_feature_count(verdict, &count));
    CHECK(count == 2);
    CHECK_OK(lic_verdict_feature_at(verdict, 0, &feature));
    CHECK_OK(lic_feature_name(feature, &text));
    CHECK(string_is(text, "export_step"));
    CHECK_OK(lic_feature_status(feature, &status));
    CHECK(status == LIC_STATUS_VALID);
    CHECK_OK(lic_feature_reason(feature, &text));
    CHECK(string_contains(text, "entitled"));
    CHECK_OK(lic_feature_limit(feature, &has, &limit));
    CHECK(has && limit == 100);
    CHECK_OK(lic_feature_expires_at(feature, &has, &value));
    CHECK(has && value == EXP + SUB_GRACE);
    CHECK_OK(lic_feature_time_left(feature, &has, &value));
    CHECK(has && value == EXP + SUB_GRACE - NOW);
    lic_feature_free(feature);
    feature = NULL;

    CHECK_OK(lic_verdict_feature_at(verdict, 1, &feature));
    CHECK_OK(lic_feature_limit(feature, &has, &limit));
    CHECK(!has && limit == 0);
    CHECK_OK(lic_feature_expires_at(feature, &has, &value));
    CHECK(has && value == CLOUD_SYNC_EXP);
    lic_feature_free(feature);
    feature = NULL;
    CHECK_RC(lic_verdict_feature_at(verdict, 2, &feature), LIC_INDEX_OUT_OF_RANGE);
    CHECK(feature == NULL);
    CHECK_OK(lic_verdict_last_error(verdict, message, sizeof message, &len));
    CHECK(strstr(message, "out of range") != NULL);

    /* Questions to the verified license, asked later. */
    CHECK_OK(lic_verdict_feature(verdict, "core", NOW, &feature));
    CHECK_OK(lic_feature_status(feature, &status));
    CHECK(status == LIC_STATUS_VALID);
    lic_feature_free(feature);
    CHECK_OK(lic_verdict_feature(verdict, "not_sold", NOW, &feature));
    CHECK_OK(lic_feature_status(feature, &status));
    CHECK(status == LIC_STATUS_FEATURE_NOT_ENTITLED);
    lic_feature_free(feature);
    CHECK_OK(lic_verdict_feature(verdict, "cloud_sync", CLOUD_SYNC_EXP + 1, &feature));
    CHECK_OK(lic_feature_status(feature, &status));
    CHECK(status == LIC_STATUS_FEATURE_EXPIRED);
    lic_feature_free(feature);
    CHECK_OK(lic_verdict_feature(verdict, "core", EXP + 10, &feature));
    CHECK_OK(lic_feature_status(feature, &status));
    CHECK(status == LIC_STATUS_VALID_IN_GRACE);
    lic_feature_free(feature);
    feature = NULL;
    CHECK_RC(lic_verdict_feature(verdict, NULL, NOW, &feature), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_verdict_feature(verdict, "core", NOW, NULL), LIC_NULL_ARGUMENT);
    CHECK_OK(lic_verdict_version(verdict, "9.9.9", false, 0, &status, NULL));
    CHECK(status == LIC_STATUS_VALID); /* a subscription without a version rule */

    /* NULL handles and out-parameters. */
    CHECK_RC(lic_verdict_status(NULL, &status), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_verdict_status(verdict, NULL), LIC_NULL_ARGUMENT);
    CHECK(!lic_verdict_is_usable(NULL));
    CHECK_RC(lic_verdict_reason(verdict, NULL), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_verdict_reason(NULL, &text), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_verdict_license_id(verdict, NULL), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_verdict_customer(NULL, &text), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_verdict_model(verdict, NULL, &model), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_verdict_model(verdict, &has, NULL), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_verdict_expires_at(verdict, &has, NULL), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_verdict_grace_ends_at(verdict, NULL, &value), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_verdict_time_left(NULL, &has, &value), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_verdict_grace_left(verdict, NULL, NULL), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_verdict_feature_count(verdict, NULL), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_verdict_feature_at(NULL, 0, &feature), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_verdict_version(verdict, NULL, false, 0, NULL, NULL), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_feature_name(NULL, &text), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_feature_status(NULL, &status), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_feature_reason(NULL, &text), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_feature_limit(NULL, &has, &limit), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_feature_expires_at(NULL, &has, &value), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_feature_time_left(NULL, &has, &value), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_verdict_last_error(NULL, message, sizeof message, &len), LIC_NULL_ARGUMENT);

    /* A feature handle outlives its verdict; its last error works like the others. */
    CHECK_OK(lic_verdict_feature_at(verdict, 0, &feature));
    lic_verdict_free(verdict);
    verdict = NULL;
    CHECK_RC(lic_feature_name(feature, NULL), LIC_NULL_ARGUMENT);
    CHECK_OK(lic_feature_last_error(feature, message, sizeof message, &len));
    CHECK(strstr(message, "out_name") != NULL);
    CHECK_RC(lic_feature_last_error(NULL, message, sizeof message, &len), LIC_NULL_ARGUMENT);
    CHECK_OK(lic_feature_name(feature, &text));
    CHECK(string_is(text, "export_step"));
    lic_feature_free(feature);

    lic_context_free(context);
    lic_verifier_free(verifier);
    free_file(&pem);
    free_file(&token);
}

static void test_time_and_models(const char *fixtures) {
    text_file pem = read_file(fixtures, "keys/public.pem");
    text_file sub = read_file(fixtures, "subscription.jwt");
    text_file trial = read_file(fixtures, "trial.jwt");
    lic_verifier *verifier = verifier_from(&pem, PRODUCT);
    lic_context *context;
    lic_verdict *verdict;
    bool has = false;
    int64_t value = 0;
    char *text = NULL;

    begin("verify: time (grace, expired, not yet valid, trial)");
    context = context_at(EXP + 1000);
    verdict = check(verifier, &sub, context);
    CHECK(status_of(verdict) == LIC_STATUS_VALID_IN_GRACE);
    CHECK(lic_verdict_is_usable(verdict));
    CHECK_OK(lic_verdict_grace_left(verdict, &has, &value));
    CHECK(has && value == SUB_GRACE - 1000);
    lic_verdict_free(verdict);
    lic_context_free(context);

    CHECK(status_at(verifier, &sub, EXP + SUB_GRACE) == LIC_STATUS_EXPIRED);
    CHECK(status_at(verifier, &sub, NBF - 10) == LIC_STATUS_NOT_YET_VALID);
    context = context_at(NBF - 10);
    CHECK_OK(lic_context_set_not_before_leeway(context, 60));
    verdict = check(verifier, &sub, context);
    CHECK(status_of(verdict) == LIC_STATUS_VALID);
    lic_verdict_free(verdict);
    lic_context_free(context);

    CHECK(status_at(verifier, &trial, NOW) == LIC_STATUS_VALID);
    context = context_at(EXP);
    verdict = check(verifier, &trial, context);
    CHECK(status_of(verdict) == LIC_STATUS_TRIAL_EXPIRED);
    CHECK(!lic_verdict_is_usable(verdict));
    CHECK_OK(lic_verdict_reason(verdict, &text));
    CHECK(string_contains(text, "trial"));
    CHECK_OK(lic_verdict_grace_ends_at(verdict, &has, &value));
    CHECK(!has);
    lic_verdict_free(verdict);
    lic_context_free(context);

    lic_verifier_free(verifier);
    free_file(&pem);
    free_file(&sub);
    free_file(&trial);
}

static void test_versions_sites_nodes(const char *fixtures) {
    text_file pem = read_file(fixtures, "keys/public.pem");
    text_file perpetual = read_file(fixtures, "perpetual.jwt");
    text_file site = read_file(fixtures, "site.jwt");
    text_file node = read_file(fixtures, "node_locked.jwt");
    lic_verifier *verifier = verifier_from(&pem, PRODUCT);
    lic_context *context;
    lic_verdict *verdict;
    lic_fingerprint *fingerprint = NULL;
    lic_status status = LIC_STATUS_NO_LICENSE;
    char *reason = NULL;
    bool has = true;
    int64_t value = -1;

    begin("verify: versions (perpetual)");
    context = context_at(NOW);
    CHECK_OK(lic_context_set_version(context, "2.4.0"));
    CHECK_OK(lic_context_set_release_date(context, true, NOW));
    verdict = check(verifier, &perpetual, context);
    CHECK(status_of(verdict) == LIC_STATUS_VALID);
    CHECK_OK(lic_verdict_expires_at(verdict, &has, &value));
    CHECK(!has && value == 0);
    CHECK_OK(lic_verdict_version(verdict, "1.5.0", true, NOW, &status, &reason));
    CHECK(status == LIC_STATUS_VALID);
    CHECK(string_contains(reason, "entitled"));
    reason = NULL;
    CHECK_OK(lic_verdict_version(verdict, "3.0.0", true, NOW, &status, &reason));
    CHECK(status == LIC_STATUS_VERSION_NOT_ENTITLED);
    CHECK(string_contains(reason, "does not satisfy"));
    CHECK_OK(lic_verdict_version(verdict, "2.0.0", true, MAINTENANCE_UNTIL + 1, &status, NULL));
    CHECK(status == LIC_STATUS_VERSION_NOT_ENTITLED);
    CHECK_OK(lic_verdict_version(verdict, NULL, false, 0, &status, NULL));
    CHECK(status == LIC_STATUS_VERSION_NOT_ENTITLED);
    status = LIC_STATUS_NO_LICENSE;
    CHECK_RC(lic_verdict_version(verdict, "v2", true, NOW, &status, NULL), LIC_INVALID_ARGUMENT);
    CHECK(status == LIC_STATUS_NO_LICENSE);
    lic_verdict_free(verdict);

    CHECK_OK(lic_context_set_version(context, "3.1.0"));
    verdict = check(verifier, &perpetual, context);
    CHECK(status_of(verdict) == LIC_STATUS_VERSION_NOT_ENTITLED);
    lic_verdict_free(verdict);
    CHECK_OK(lic_context_set_version(context, NULL));
    verdict = check(verifier, &perpetual, context);
    CHECK(status_of(verdict) == LIC_STATUS_VERSION_NOT_ENTITLED);
    lic_verdict_free(verdict);
    lic_context_free(context);

    begin("verify: site restrictions");
    context = context_at(NOW);
    CHECK_OK(lic_context_add_attribute(context, "country", "DE"));
    CHECK_OK(lic_context_add_attribute(context, "department", "R&D"));
    verdict = check(verifier, &site, context);
    CHECK(status_of(verdict) == LIC_STATUS_VALID);
    lic_verdict_free(verdict);
    CHECK_OK(lic_context_add_attribute(context, "country", "US"));
    verdict = check(verifier, &site, context);
    CHECK(status_of(verdict) == LIC_STATUS_SITE_RESTRICTED);
    lic_verdict_free(verdict);
    lic_context_free(context);
    CHECK(status_at(verifier, &site, NOW) == LIC_STATUS_SITE_RESTRICTED);

    begin("verify: node lock");
    context = context_at(NOW);
    verdict = check(verifier, &node, context);
    CHECK(status_of(verdict) == LIC_STATUS_FINGERPRINT_MISMATCH); /* no fingerprint given */
    lic_verdict_free(verdict);
    CHECK_OK(lic_fingerprint_with_override(PRODUCT, "ffi-test-node", &fingerprint));
    CHECK_OK(lic_context_set_fingerprint(context, fingerprint));
    lic_fingerprint_free(fingerprint);
    verdict = check(verifier, &node, context);
    CHECK(status_of(verdict) == LIC_STATUS_VALID);
    lic_verdict_free(verdict);
    CHECK_OK(lic_fingerprint_with_override(PRODUCT, "another-node", &fingerprint));
    CHECK_OK(lic_context_set_fingerprint(context, fingerprint));
    lic_fingerprint_free(fingerprint);
    verdict = check(verifier, &node, context);
    CHECK(status_of(verdict) == LIC_STATUS_FINGERPRINT_MISMATCH);
    lic_verdict_free(verdict);
    lic_context_free(context);

    lic_verifier_free(verifier);
    free_file(&pem);
    free_file(&perpetual);
    free_file(&site);
    free_file(&node);
}

static void test_refused_tokens(const char *fixtures) {
    text_file pem = read_file(fixtures, "keys/public.pem");
    text_file other = read_file(fixtures, "other/public.pem");
    text_file token = read_file(fixtures, "subscription.jwt");
    text_file tampered = read_file(fixtures, "subscription.jwt");
    lic_verifier *verifier = verifier_from(&pem, PRODUCT);
    lic_verifier *stranger = verifier_from(&other, PRODUCT);
    lic_verifier *other_product = verifier_from(&pem, "com.example.viewer");
    lic_context *context = context_at(NOW);
    lic_verdict *verdict = NULL;
    lic_feature *feature = NULL;
    lic_status status = LIC_STATUS_VALID;
    char sentinel = 's';
    char *text = &sentinel;
    bool has = true;
    lic_model model = LIC_MODEL_SITE;
    char message[512];
    size_t len = 0;
    char *last_dot;
    size_t i;
    static const char not_utf8[] = {'e', 'y', (char)0x80, '.', 'a', '.', 'b'};

    begin("verify: refused tokens and bad arguments");
    /* Tamper with the signature: one base64url character changed. */
    last_dot = strrchr(tampered.data, '.');
    CHECK(last_dot != NULL);
    if (last_dot != NULL) {
        last_dot[10] = last_dot[10] == 'A' ? 'B' : 'A';
    }
    verdict = check(verifier, &tampered, context);
    CHECK(status_of(verdict) == LIC_STATUS_SIGNATURE_INVALID);
    CHECK(!lic_verdict_is_usable(verdict));
    CHECK_OK(lic_verdict_license_id(verdict, &text));
    CHECK(text == NULL); /* optional strings: NULL when absent */
    if (text != &sentinel) {
        lic_string_free(text); /* no-op on NULL */
    }
    text = &sentinel;
    CHECK_OK(lic_verdict_customer(verdict, &text));
    CHECK(text == NULL);
    text = NULL;
    CHECK_OK(lic_verdict_model(verdict, &has, &model));
    CHECK(!has && model == LIC_MODEL_PERPETUAL);
    CHECK_RC(lic_verdict_feature(verdict, "core", NOW, &feature), LIC_NOT_VERIFIED);
    CHECK(feature == NULL);
    CHECK_OK(lic_verdict_last_error(verdict, message, sizeof message, &len));
    CHECK(strstr(message, "no verified license") != NULL);
    CHECK_RC(lic_verdict_version(verdict, "1.0.0", false, 0, &status, NULL), LIC_NOT_VERIFIED);
    lic_verdict_free(verdict);

    /* Tamper with the payload: flip one character in the middle segment. */
    memcpy(tampered.data, token.data, token.len);
    tampered.data[strchr(token.data, '.') - token.data + 5] ^= 0x01;
    CHECK(status_at(verifier, &tampered, NOW) == LIC_STATUS_SIGNATURE_INVALID ||
          status_at(verifier, &tampered, NOW) == LIC_STATUS_MALFORMED);

    /* Truncated: the token's length is what counts, not a NUL. */
    verdict = NULL;
    CHECK_OK(lic_verifier_check(verifier, token.data, token.len - 3, context, &verdict));
    CHECK(status_of(verdict) == LIC_STATUS_SIGNATURE_INVALID ||
          status_of(verdict) == LIC_STATUS_MALFORMED);
    lic_verdict_free(verdict);

    verdict = NULL;
    CHECK_OK(lic_verifier_check(verifier, "not.a.token", 11, context, &verdict));
    CHECK(status_of(verdict) == LIC_STATUS_MALFORMED);
    CHECK_OK(lic_verdict_reason(verdict, &text));
    CHECK(text != NULL && strlen(text) > 0);
    lic_string_free(text);
    lic_verdict_free(verdict);
    verdict = NULL;
    CHECK_OK(lic_verifier_check(verifier, "", 0, context, &verdict));
    CHECK(status_of(verdict) == LIC_STATUS_MALFORMED);
    lic_verdict_free(verdict);

    CHECK(status_at(stranger, &token, NOW) == LIC_STATUS_UNKNOWN_KEY);
    CHECK(status_at(other_product, &token, NOW) == LIC_STATUS_PRODUCT_MISMATCH);

    verdict = NULL;
    CHECK_RC(lic_verifier_check(verifier, not_utf8, sizeof not_utf8, context, &verdict),
             LIC_INVALID_UTF8);
    CHECK(verdict == NULL);
    CHECK_OK(lic_verifier_last_error(verifier, message, sizeof message, &len));
    CHECK(strstr(message, "`token` is not valid UTF-8") != NULL);
    CHECK_RC(lic_verifier_last_error(NULL, message, sizeof message, &len), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_verifier_check(verifier, NULL, 10, context, &verdict), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_verifier_check(verifier, token.data, token.len, NULL, &verdict),
             LIC_NULL_ARGUMENT);
    CHECK_RC(lic_verifier_check(verifier, token.data, token.len, context, NULL),
             LIC_NULL_ARGUMENT);
    CHECK_RC(lic_verifier_check(NULL, token.data, token.len, context, &verdict),
             LIC_NULL_ARGUMENT);
    CHECK(verdict == NULL);
    CHECK_RC(lic_verifier_check(verifier, token.data, (size_t)PTRDIFF_MAX + 1, context, &verdict),
             LIC_INVALID_ARGUMENT);

    {
        lic_trust_store *store = store_from(&pem);
        lic_verifier *none = NULL;
        CHECK_RC(lic_verifier_new(NULL, PRODUCT, &none), LIC_NULL_ARGUMENT);
        CHECK_RC(lic_verifier_new(store, NULL, &none), LIC_NULL_ARGUMENT);
        CHECK_RC(lic_verifier_new(store, PRODUCT, NULL), LIC_NULL_ARGUMENT);
        CHECK_RC(lic_verifier_new(store, not_utf8, &none), LIC_INVALID_UTF8);
        CHECK(none == NULL);
        lic_trust_store_free(store);
    }

    /* Many tokens in a loop: nothing accumulates (valgrind checks). */
    for (i = 0; i < 20; i++) {
        CHECK(status_at(verifier, &token, NOW + (int64_t)i) == LIC_STATUS_VALID);
    }

    lic_context_free(context);
    lic_verifier_free(verifier);
    lic_verifier_free(stranger);
    lic_verifier_free(other_product);
    free_file(&pem);
    free_file(&other);
    free_file(&token);
    free_file(&tampered);
}

static void test_fingerprint(void) {
    lic_fingerprint *fp = NULL, *same = NULL, *other_salt = NULL, *machine = NULL;
    char *id = NULL, *id2 = NULL, *name = NULL, *hash = NULL;
    size_t count = 0, i, len = 0;
    uint8_t *json = NULL;
    bool is_virtual = false;
    char message[512];

    begin("fingerprint");
    CHECK_OK(lic_fingerprint_this_machine(PRODUCT, &machine));
    CHECK_OK(lic_fingerprint_id(machine, &id));
    CHECK(id != NULL && strlen(id) == 43);
    lic_string_free(id);
    id = NULL;
    CHECK_OK(lic_fingerprint_component_count(machine, &count));
    CHECK(count >= 1);
    for (i = 0; i < count; i++) {
        name = hash = NULL;
        CHECK_OK(lic_fingerprint_component(machine, i, &name, &hash));
        CHECK(name != NULL && strlen(name) > 0 && hash != NULL && strlen(hash) == 43);
        lic_string_free(name);
        lic_string_free(hash);
    }
    name = hash = NULL;
    CHECK_RC(lic_fingerprint_component(machine, count, &name, &hash), LIC_INDEX_OUT_OF_RANGE);
    CHECK(name == NULL && hash == NULL);
    CHECK_OK(lic_fingerprint_last_error(machine, message, sizeof message, &len));
    CHECK(strstr(message, "out of range") != NULL);
    CHECK_OK(lic_fingerprint_is_virtual(machine, &is_virtual));
    printf("   this machine: %zu components, %s\n", count, is_virtual ? "virtual" : "bare metal");
    CHECK_OK(lic_fingerprint_to_json(machine, &json, &len));
    CHECK(json != NULL && len > 10 && json[0] == '{' && json[len - 1] == '}');
    {
        /* The JSON form reads back into the same fingerprint; bad documents are refused. */
        lic_fingerprint *parsed = NULL;
        char *parsed_id = NULL, *machine_id = NULL;
        static const char duplicate[] = "{\"id\":\"a\",\"id\":\"b\"}";
        CHECK_OK(lic_fingerprint_from_json((const char *)json, len, &parsed));
        CHECK_OK(lic_fingerprint_id(parsed, &parsed_id));
        CHECK_OK(lic_fingerprint_id(machine, &machine_id));
        CHECK(parsed_id != NULL && machine_id != NULL && strcmp(parsed_id, machine_id) == 0);
        lic_string_free(parsed_id);
        lic_string_free(machine_id);
        lic_fingerprint_free(parsed);
        parsed = NULL;
        CHECK_RC(lic_fingerprint_from_json(duplicate, strlen(duplicate), &parsed),
                 LIC_INVALID_ARGUMENT);
        CHECK(parsed == NULL);
        CHECK_RC(lic_fingerprint_from_json("{\"id\":5}", 8, &parsed), LIC_INVALID_ARGUMENT);
        CHECK_RC(lic_fingerprint_from_json("[]", 2, &parsed), LIC_INVALID_ARGUMENT);
        CHECK_RC(lic_fingerprint_from_json(NULL, 2, &parsed), LIC_NULL_ARGUMENT);
        CHECK_RC(lic_fingerprint_from_json("{}", 2, NULL), LIC_NULL_ARGUMENT);
        CHECK(parsed == NULL);
    }
    lic_bytes_free(json, len);

    /* A vendor-supplied identity: one component, stable, salted per product. */
    CHECK_OK(lic_fingerprint_with_override(PRODUCT, "ffi-test-node", &fp));
    CHECK_OK(lic_fingerprint_with_override(PRODUCT, "ffi-test-node", &same));
    CHECK_OK(lic_fingerprint_with_override("com.example.viewer", "ffi-test-node", &other_salt));
    CHECK_OK(lic_fingerprint_component_count(fp, &count));
    CHECK(count == 1);
    CHECK_OK(lic_fingerprint_component(fp, 0, &name, &hash));
    CHECK(string_is(name, "override"));
    lic_string_free(hash);
    CHECK_OK(lic_fingerprint_id(fp, &id));
    CHECK_OK(lic_fingerprint_id(same, &id2));
    CHECK(id != NULL && id2 != NULL && strcmp(id, id2) == 0);
    lic_string_free(id2);
    CHECK_OK(lic_fingerprint_id(other_salt, &id2));
    CHECK(id2 != NULL && strcmp(id, id2) != 0);
    lic_string_free(id2);
    lic_string_free(id);

    CHECK_RC(lic_fingerprint_this_machine(NULL, &machine), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_fingerprint_this_machine(PRODUCT, NULL), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_fingerprint_with_override(PRODUCT, NULL, &machine), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_fingerprint_id(NULL, &id), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_fingerprint_id(fp, NULL), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_fingerprint_component_count(NULL, &count), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_fingerprint_component(fp, 0, &name, NULL), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_fingerprint_is_virtual(fp, NULL), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_fingerprint_to_json(fp, &json, NULL), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_fingerprint_to_json(NULL, &json, &len), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_fingerprint_last_error(NULL, message, sizeof message, &len), LIC_NULL_ARGUMENT);

    lic_fingerprint_free(fp);
    lic_fingerprint_free(same);
    lic_fingerprint_free(other_salt);
    lic_fingerprint_free(machine);
}

static void test_startup(const char *fixtures, const char *store_dir) {
    text_file pem = read_file(fixtures, "keys/public.pem");
    text_file token = read_file(fixtures, "subscription.jwt");
    text_file tampered = read_file(fixtures, "subscription.jwt");
    lic_trust_store *trust = store_from(&pem);
    lic_license_store *store = NULL, *platform = NULL, *none = NULL;
    lic_licensing *licensing = NULL, *unused = NULL;
    lic_context *context = context_at(0);
    lic_verdict *verdict = NULL;
    lic_fingerprint *fingerprint = NULL;
    lic_feature *feature = NULL;
    lic_status status = LIC_STATUS_VALID;
    size_t count = 0, len = 0;
    bool has = false;
    uint64_t limit = 0;
    char *text = NULL;
    char message[1024];
    char bad_dir[4096];
    /* The real clock: the clock guard compares with the token's iat (when it was issued). */
    const int64_t now = lic_unix_now();

    begin("license store and startup check");
    CHECK_OK(lic_license_store_open(store_dir, &store));
    CHECK_OK(lic_license_store_dir(store, &text));
    CHECK(string_is(text, store_dir));
    CHECK_OK(lic_context_set_version(context, "2.4.0"));
    CHECK_OK(lic_context_add_feature(context, "core"));
    CHECK_OK(lic_licensing_new(trust, PRODUCT, store, context, &licensing));
    lic_context_free(context); /* copied */
    context = NULL;

    /* Nothing installed yet. */
    CHECK_OK(lic_licensing_check_at_startup(licensing, now, &verdict));
    CHECK(status_of(verdict) == LIC_STATUS_NO_LICENSE);
    CHECK(!lic_verdict_is_usable(verdict));
    /* No license installed: nothing verified to ask. */
    CHECK_RC(lic_verdict_feature(verdict, "core", now, &feature), LIC_NOT_VERIFIED);
    CHECK(feature == NULL);
    CHECK_RC(lic_verdict_version(verdict, "2.4.0", false, 0, &status, NULL), LIC_NOT_VERIFIED);
    lic_verdict_free(verdict);

    /* A tampered token is a verdict, not stored. */
    tampered.data[tampered.len - 5] = tampered.data[tampered.len - 5] == 'A' ? 'B' : 'A';
    CHECK_OK(lic_licensing_install(licensing, tampered.data, tampered.len, now, &verdict));
    CHECK(status_of(verdict) == LIC_STATUS_SIGNATURE_INVALID);
    CHECK_RC(lic_verdict_feature(verdict, "core", now, &feature), LIC_NOT_VERIFIED);
    CHECK(feature == NULL);
    lic_verdict_free(verdict);
    CHECK_OK(lic_licensing_check_at_startup(licensing, now, &verdict));
    CHECK(status_of(verdict) == LIC_STATUS_NO_LICENSE);
    lic_verdict_free(verdict);

    /* Install, then launch: valid, with the features the context asked about. */
    CHECK_OK(lic_licensing_install(licensing, token.data, token.len, now, &verdict));
    CHECK(status_of(verdict) == LIC_STATUS_VALID);
    /* The install verdict holds the verified license: any feature may be asked. */
    CHECK_OK(lic_verdict_feature(verdict, "export_step", now, &feature));
    CHECK_OK(lic_feature_status(feature, &status));
    CHECK(status == LIC_STATUS_VALID);
    CHECK_OK(lic_feature_limit(feature, &has, &limit));
    CHECK(has && limit == 100);
    lic_feature_free(feature);
    feature = NULL;
    lic_verdict_free(verdict);
    CHECK_OK(lic_licensing_check_at_startup(licensing, now + 60, &verdict));
    CHECK(status_of(verdict) == LIC_STATUS_VALID);
    CHECK_OK(lic_verdict_feature_count(verdict, &count));
    CHECK(count == 1);
    CHECK_OK(lic_verdict_feature_at(verdict, 0, &feature));
    CHECK_OK(lic_feature_status(feature, &status));
    CHECK(status == LIC_STATUS_VALID);
    lic_feature_free(feature);
    feature = NULL;
    /* Startup verdicts hold the verified license: features and versions the licensing
     * context did not ask about. */
    CHECK_OK(lic_verdict_feature(verdict, "export_step", now + 60, &feature));
    CHECK_OK(lic_feature_status(feature, &status));
    CHECK(status == LIC_STATUS_VALID);
    CHECK_OK(lic_feature_limit(feature, &has, &limit));
    CHECK(has && limit == 100);
    lic_feature_free(feature);
    feature = NULL;
    CHECK_OK(lic_verdict_feature(verdict, "teleport", now + 60, &feature));
    CHECK_OK(lic_feature_status(feature, &status));
    CHECK(status == LIC_STATUS_FEATURE_NOT_ENTITLED);
    lic_feature_free(feature);
    feature = NULL;
    CHECK_OK(lic_verdict_feature(verdict, "cloud_sync", CLOUD_SYNC_EXP + 1, &feature));
    CHECK_OK(lic_feature_status(feature, &status));
    CHECK(status == LIC_STATUS_FEATURE_EXPIRED);
    lic_feature_free(feature);
    feature = NULL;
    status = LIC_STATUS_MALFORMED;
    CHECK_OK(lic_verdict_version(verdict, "9.0.0", false, 0, &status, &text));
    CHECK(status == LIC_STATUS_VALID); /* subscription.json has no version rule */
    CHECK(string_contains(text, "no version restriction"));
    CHECK_RC(lic_verdict_version(verdict, "not semver", false, 0, &status, NULL),
             LIC_INVALID_ARGUMENT);
    lic_verdict_free(verdict);

    /* The clock set back by two hours (tolerance: one). */
    CHECK_OK(lic_licensing_check_at_startup(licensing, now - 7200, &verdict));
    CHECK(status_of(verdict) == LIC_STATUS_CLOCK_TAMPERED);
    CHECK(!lic_verdict_is_usable(verdict));
    CHECK_OK(lic_verdict_reason(verdict, &text));
    CHECK(string_contains(text, "behind"));
    /* The token is genuine, so the license can still be asked (the verdict's status rules). */
    CHECK_OK(lic_verdict_feature(verdict, "core", now - 7200, &feature));
    lic_feature_free(feature);
    feature = NULL;
    lic_verdict_free(verdict);

    /* Grace a long time later. */
    CHECK_OK(lic_licensing_check_at_startup(licensing, EXP + 3600, &verdict));
    CHECK(status_of(verdict) == LIC_STATUS_VALID_IN_GRACE);
    lic_verdict_free(verdict);

    CHECK_OK(lic_licensing_fingerprint(licensing, &fingerprint));
    CHECK_OK(lic_fingerprint_component_count(fingerprint, &count));
    CHECK(count >= 1);
    lic_fingerprint_free(fingerprint);

    /* Deactivate: no license again. */
    CHECK_OK(lic_license_store_clear(store));
    CHECK_OK(lic_licensing_check_at_startup(licensing, EXP + 7200, &verdict));
    CHECK(status_of(verdict) == LIC_STATUS_NO_LICENSE);
    lic_verdict_free(verdict);
    verdict = NULL;

    /* Errors. */
    snprintf(bad_dir, sizeof bad_dir, "%s/keys/public.pem/store", fixtures);
    CHECK_RC(lic_license_store_open(bad_dir, &none), LIC_STORE_ERROR);
    CHECK(none == NULL);
    CHECK(last_error_contains("public.pem"));
    CHECK_RC(lic_license_store_open(NULL, &none), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_license_store_open(store_dir, NULL), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_license_store_for_app("com", "Example", "FfiTest", 7, &none), LIC_INVALID_ARGUMENT);
    CHECK(last_error_contains("scope 7"));
    CHECK_RC(lic_license_store_for_app(NULL, "Example", "FfiTest", LIC_SCOPE_USER, &none),
             LIC_NULL_ARGUMENT);
    /* The platform's user directory (the test script points XDG_DATA_HOME at a temp dir). */
    CHECK_OK(lic_license_store_for_app("com", "Example", "FfiTest", LIC_SCOPE_USER, &platform));
    CHECK_OK(lic_license_store_dir(platform, &text));
    CHECK(text != NULL && strlen(text) > 0); /* directory naming is the platform's */
    lic_string_free(text);
    CHECK_RC(lic_license_store_dir(platform, NULL), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_license_store_dir(NULL, &text), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_license_store_clear(NULL), LIC_NULL_ARGUMENT);
    CHECK_OK(lic_license_store_last_error(platform, message, sizeof message, &len));
    CHECK(strstr(message, "out_dir") != NULL);
    CHECK_RC(lic_license_store_last_error(NULL, message, sizeof message, &len), LIC_NULL_ARGUMENT);

    CHECK_RC(lic_licensing_new(NULL, PRODUCT, store, NULL, &unused), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_licensing_new(trust, NULL, store, NULL, &unused), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_licensing_new(trust, PRODUCT, NULL, NULL, &unused), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_licensing_new(trust, PRODUCT, store, NULL, NULL), LIC_NULL_ARGUMENT);
    CHECK(unused == NULL);
    /* Without a context; the platform store. */
    CHECK_OK(lic_licensing_new(trust, PRODUCT, platform, NULL, &unused));
    CHECK_OK(lic_licensing_check_at_startup(unused, now, &verdict));
    CHECK(status_of(verdict) == LIC_STATUS_NO_LICENSE);
    lic_verdict_free(verdict);
    verdict = NULL;
    lic_licensing_free(unused);

    CHECK_RC(lic_licensing_check_at_startup(NULL, now, &verdict), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_licensing_check_at_startup(licensing, now, NULL), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_licensing_install(licensing, NULL, 0, now, &verdict), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_licensing_install(licensing, token.data, token.len, now, NULL),
             LIC_NULL_ARGUMENT);
    CHECK_RC(lic_licensing_install(NULL, token.data, token.len, now, &verdict), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_licensing_fingerprint(licensing, NULL), LIC_NULL_ARGUMENT);
    CHECK_RC(lic_licensing_fingerprint(NULL, &fingerprint), LIC_NULL_ARGUMENT);
    CHECK_OK(lic_licensing_last_error(licensing, message, sizeof message, &len));
    CHECK(strstr(message, "out_fingerprint") != NULL);
    CHECK_RC(lic_licensing_last_error(NULL, message, sizeof message, &len), LIC_NULL_ARGUMENT);
    CHECK(verdict == NULL);

    lic_licensing_free(licensing);
    lic_license_store_free(store);
    lic_license_store_free(platform);
    lic_trust_store_free(trust);
    free_file(&pem);
    free_file(&token);
    free_file(&tampered);
}

/* ---------------------------------------------------------------------------------------- */
/* One verifier and one context shared by several threads (documented thread-safe). */

typedef struct {
    const lic_verifier *verifier;
    const lic_context *context;
    const text_file *token;
    int valid;
} thread_job;

static void *thread_main(void *arg) {
    thread_job *job = arg;
    int i;
    for (i = 0; i < 25; i++) {
        lic_verdict *verdict = NULL;
        lic_status status = LIC_STATUS_NO_LICENSE;
        if (lic_verifier_check(job->verifier, job->token->data, job->token->len, job->context,
                               &verdict) == LIC_OK &&
            lic_verdict_status(verdict, &status) == LIC_OK && status == LIC_STATUS_VALID) {
            job->valid++;
        }
        lic_verdict_free(verdict);
    }
    return NULL;
}

static void test_threads(const char *fixtures) {
    enum { THREADS = 4 };
    text_file pem = read_file(fixtures, "keys/public.pem");
    text_file token = read_file(fixtures, "subscription.jwt");
    lic_verifier *verifier = verifier_from(&pem, PRODUCT);
    lic_context *context = context_at(NOW);
    pthread_t threads[THREADS];
    thread_job jobs[THREADS];
    int i;

    begin("threads share a verifier and a context");
    for (i = 0; i < THREADS; i++) {
        jobs[i].verifier = verifier;
        jobs[i].context = context;
        jobs[i].token = &token;
        jobs[i].valid = 0;
        CHECK(pthread_create(&threads[i], NULL, thread_main, &jobs[i]) == 0);
    }
    for (i = 0; i < THREADS; i++) {
        CHECK(pthread_join(threads[i], NULL) == 0);
        CHECK(jobs[i].valid == 25);
    }
    lic_context_free(context);
    lic_verifier_free(verifier);
    free_file(&pem);
    free_file(&token);
}

static void test_free_and_panic(void) {
    lic_verdict *verdict = NULL;
    begin("free(NULL) is a no-op; panics are caught");
    lic_trust_store_free(NULL);
    lic_verifier_free(NULL);
    lic_context_free(NULL);
    lic_verdict_free(NULL);
    lic_feature_free(NULL);
    lic_fingerprint_free(NULL);
    lic_license_store_free(NULL);
    lic_licensing_free(NULL);
    lic_string_free(NULL);
    lic_bytes_free(NULL, 0);
    lic_bytes_free(NULL, 42);
    /* The documented pattern against double free: free, then NULL the pointer. */
    lic_verdict_free(verdict);
    verdict = NULL;
    lic_verdict_free(verdict);
    passed++;

    fprintf(stderr, "(the panic message below is expected)\n");
    CHECK_RC(lic_test_panic(), LIC_PANIC);
    CHECK(last_error_contains("lic_test_panic was called"));
    CHECK(last_error_contains("panicked"));
    /* The library still works after a caught panic. */
    CHECK(strcmp(lic_version(), LIC_VERSION_STRING) == 0);
    CHECK_RC(lic_test_panic(), LIC_PANIC);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s FIXTURES_DIR STORE_DIR\n", argv[0]);
        return 2;
    }
    printf("licensing %s (header %s)\n", lic_version(), LIC_VERSION_STRING);
    test_version_and_static_strings();
    test_trust_store(argv[1]);
    test_last_error_buffers(argv[1]);
    test_context();
    test_valid_subscription(argv[1]);
    test_time_and_models(argv[1]);
    test_versions_sites_nodes(argv[1]);
    test_refused_tokens(argv[1]);
    test_fingerprint();
    test_startup(argv[1], argv[2]);
    test_threads(argv[1]);
    test_free_and_panic();
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
