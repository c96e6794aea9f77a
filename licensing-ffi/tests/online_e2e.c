/*
 * The online client through the C ABI, against a real licensing-server (started and driven by
 * scripts/test-ffi.sh). One step per run, on a store that persists between runs:
 *
 *   online_e2e JWKS URL STORE_DIR MACHINE STEP [ARG]
 *
 *   activate KEY          activate, expect valid
 *   refused KEY CODE      activate, expect LIC_SERVER_ERROR with that server code
 *   validate STATUS       validate online, expect STATUS (a lic_status name)
 *   startup STATUS        offline start (lic_licensing_check_at_startup), expect STATUS
 *   offline STATUS        lic_client_check_online within 2 s with the server gone: offline
 *                         (the reason names the server), STATUS; lic_client_validate fails
 *                         with LIC_NETWORK_ERROR
 *   silent STATUS         lic_client_check_online against a listener that never answers, limit
 *                         500 ms: back within the limit plus $ONLINE_E2E_SLACK_MS (default
 *                         300), offline, STATUS
 *   request KEY FILE      write an air-gapped activation request to FILE
 *   import FILE STATUS    import the response in FILE, expect STATUS
 *   deactivate            deactivate, expect the activation removed and the store empty
 *
 * MACHINE is the fingerprint override value. Prints "N passed, N failed"; exit 1 on failure.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "licensing.h"

#define PRODUCT "com.example.cad"

static int passed;
static int failed;

#define CHECK(cond) check_at((cond) ? 1 : 0, #cond, __LINE__)

static void check_at(int ok, const char *what, int line) {
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("FAIL line %d: %s\n", line, what);
    }
}

static void client_error(const lic_client *client, const char *call, lic_result rc) {
    char text[1024];
    char code[128];
    size_t len = 0;
    if (lic_client_last_error(client, text, sizeof text, &len) != LIC_OK) {
        text[0] = '\0';
    }
    if (lic_client_last_server_code(client, code, sizeof code, &len) != LIC_OK) {
        code[0] = '\0';
    }
    printf("%s: %u (%s) server code '%s': %s\n", call, (unsigned)rc, lic_result_message(rc), code,
           text);
}

static char *read_file(const char *path, size_t *out_len) {
    FILE *f = fopen(path, "rb");
    char *data;
    long size;
    if (f == NULL) {
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, 0, SEEK_SET);
    data = malloc((size_t)size + 1);
    if (data != NULL && fread(data, 1, (size_t)size, f) == (size_t)size) {
        data[size] = '\0';
        *out_len = (size_t)size;
    } else {
        free(data);
        data = NULL;
    }
    fclose(f);
    return data;
}

static double seconds_since(const struct timespec *start) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

/* Checks a verdict's status by name, then frees it. */
static void expect_status(lic_verdict *verdict, const char *want) {
    lic_status status = LIC_STATUS_MALFORMED;
    CHECK(lic_verdict_status(verdict, &status) == LIC_OK);
    printf("status: %s\n", lic_status_name(status));
    CHECK(strcmp(lic_status_name(status), want) == 0);
    lic_verdict_free(verdict);
}

/* The startup check with the server, bounded: expects an offline verdict with `want`. */
static void check_offline(lic_client *client, lic_licensing *licensing, uint32_t limit_ms,
                          const char *want, double slack) {
    lic_verdict *verdict = NULL;
    bool online = true;
    struct timespec start;
    double took;
    char text[1024];
    size_t len = 0;
    clock_gettime(CLOCK_MONOTONIC, &start);
    CHECK(lic_client_check_online(client, licensing, lic_unix_now(), limit_ms, &verdict,
                                  &online) == LIC_OK);
    took = seconds_since(&start);
    printf("check_online took %.3f s (limit %u ms)\n", took, (unsigned)limit_ms);
    CHECK(!online);
    CHECK(took < (double)limit_ms / 1000.0 + slack);
    CHECK(lic_client_last_error(client, text, sizeof text, &len) == LIC_OK);
    printf("offline because: %s\n", text);
    CHECK(strstr(text, "licensing server") != NULL);
    if (verdict != NULL) {
        expect_status(verdict, want);
    }
}

int main(int argc, char **argv) {
    const char *jwks_path, *url, *store_dir, *machine, *step;
    char *jwks;
    size_t jwks_len = 0;
    lic_trust_store *trust = NULL;
    lic_license_store *store = NULL;
    lic_licensing *licensing = NULL;
    lic_client *client = NULL;
    lic_verdict *verdict = NULL;
    lic_result rc;
    /* How much longer than its limit a bounded call may take: the work around the network call
     * (store, verification) natively; much more under valgrind, which slows everything. */
    const char *slack_env = getenv("ONLINE_E2E_SLACK_MS");
    double slack = (slack_env != NULL ? atof(slack_env) : 300.0) / 1000.0;

    if (argc < 6) {
        fprintf(stderr, "usage: online_e2e JWKS URL STORE_DIR MACHINE STEP [ARG...]\n");
        return 2;
    }
    jwks_path = argv[1];
    url = argv[2];
    store_dir = argv[3];
    machine = argv[4];
    step = argv[5];
    /* Each "machine" is a fixed identity: the override, as containers and cloud nodes use. */
    setenv("LICENSING_FINGERPRINT_OVERRIDE", machine, 1);

    jwks = read_file(jwks_path, &jwks_len);
    CHECK(jwks != NULL);
    if (jwks == NULL) {
        return 1;
    }
    CHECK(lic_trust_store_new(&trust) == LIC_OK);
    CHECK(lic_trust_store_add_document(trust, jwks, jwks_len) == LIC_OK);
    free(jwks);
    CHECK(lic_license_store_open(store_dir, &store) == LIC_OK);
    CHECK(lic_licensing_new(trust, PRODUCT, store, NULL, &licensing) == LIC_OK);
    CHECK(lic_client_new(trust, url, PRODUCT, 10000, &client) == LIC_OK);

    if (strcmp(step, "activate") == 0 && argc == 7) {
        rc = lic_client_activate(client, licensing, argv[6], lic_unix_now(), &verdict);
        if (rc != LIC_OK) {
            client_error(client, "lic_client_activate", rc);
        }
        CHECK(rc == LIC_OK);
        if (rc == LIC_OK) {
            expect_status(verdict, "valid");
        }
    } else if (strcmp(step, "refused") == 0 && argc == 8) {
        char code[128];
        size_t len = 0;
        rc = lic_client_activate(client, licensing, argv[6], lic_unix_now(), &verdict);
        client_error(client, "lic_client_activate", rc);
        CHECK(rc == LIC_SERVER_ERROR);
        CHECK(verdict == NULL); /* out-parameters only on success */
        CHECK(lic_client_last_server_code(client, code, sizeof code, &len) == LIC_OK);
        CHECK(strcmp(code, argv[7]) == 0);
    } else if (strcmp(step, "validate") == 0 && argc == 7) {
        rc = lic_client_validate(client, licensing, lic_unix_now(), &verdict);
        if (rc != LIC_OK) {
            client_error(client, "lic_client_validate", rc);
        }
        CHECK(rc == LIC_OK);
        if (rc == LIC_OK) {
            expect_status(verdict, argv[6]);
        }
    } else if (strcmp(step, "startup") == 0 && argc == 7) {
        CHECK(lic_licensing_check_at_startup(licensing, lic_unix_now(), &verdict) == LIC_OK);
        if (verdict != NULL) {
            expect_status(verdict, argv[6]);
        }
    } else if (strcmp(step, "offline") == 0 && argc == 7) {
        check_offline(client, licensing, 2000, argv[6], slack);
        /* Validating alone says why, with its own code. */
        rc = lic_client_validate(client, licensing, lic_unix_now(), &verdict);
        CHECK(rc == LIC_NETWORK_ERROR);
    } else if (strcmp(step, "silent") == 0 && argc == 7) {
        /* A listener that accepts (kernel backlog) and never answers. */
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in addr;
        socklen_t addr_len = sizeof addr;
        char silent_url[64];
        lic_client *silent = NULL;
        memset(&addr, 0, sizeof addr);
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        CHECK(fd >= 0);
        CHECK(bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0);
        CHECK(listen(fd, 8) == 0);
        CHECK(getsockname(fd, (struct sockaddr *)&addr, &addr_len) == 0);
        snprintf(silent_url, sizeof silent_url, "http://127.0.0.1:%u",
                 (unsigned)ntohs(addr.sin_port));
        CHECK(lic_client_new(trust, silent_url, PRODUCT, 10000, &silent) == LIC_OK);
        check_offline(silent, licensing, 500, argv[6], slack);
        lic_client_free(silent);
        close(fd);
    } else if (strcmp(step, "request") == 0 && argc == 8) {
        char *json = NULL;
        FILE *out;
        rc = lic_client_offline_request(client, licensing, argv[6], lic_unix_now(), &json);
        CHECK(rc == LIC_OK);
        if (rc == LIC_OK) {
            CHECK(strstr(json, "licensing.offline_activation_request") != NULL);
            out = fopen(argv[7], "w");
            CHECK(out != NULL);
            if (out != NULL) {
                fputs(json, out);
                fclose(out);
            }
            lic_string_free(json);
        }
    } else if (strcmp(step, "import") == 0 && argc == 8) {
        size_t len = 0;
        char *response = read_file(argv[6], &len);
        CHECK(response != NULL);
        if (response != NULL) {
            rc = lic_client_import_offline_response(client, licensing, response, len,
                                                    lic_unix_now(), &verdict);
            if (rc != LIC_OK) {
                client_error(client, "lic_client_import_offline_response", rc);
            }
            CHECK(rc == LIC_OK);
            if (rc == LIC_OK) {
                expect_status(verdict, argv[7]);
            }
            /* The request is no longer pending: the same response is refused. */
            rc = lic_client_import_offline_response(client, licensing, response, len,
                                                    lic_unix_now(), &verdict);
            CHECK(rc == LIC_NOT_ACTIVATED);
            free(response);
        }
    } else if (strcmp(step, "deactivate") == 0 && argc == 6) {
        bool removed = false;
        rc = lic_client_deactivate(client, licensing, &removed);
        if (rc != LIC_OK) {
            client_error(client, "lic_client_deactivate", rc);
        }
        CHECK(rc == LIC_OK);
        CHECK(removed);
        CHECK(lic_licensing_check_at_startup(licensing, lic_unix_now(), &verdict) == LIC_OK);
        if (verdict != NULL) {
            expect_status(verdict, "no_license");
        }
        rc = lic_client_validate(client, licensing, lic_unix_now(), &verdict);
        CHECK(rc == LIC_NOT_ACTIVATED);
    } else {
        fprintf(stderr, "unknown step or wrong arguments: %s\n", step);
        failed++;
    }

    lic_client_free(client);
    lic_licensing_free(licensing);
    lic_license_store_free(store);
    lic_trust_store_free(trust);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
