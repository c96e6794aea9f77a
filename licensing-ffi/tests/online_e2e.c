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
 *   transfer KEY FROM     transfer the activation of fingerprint id FROM here, expect valid
 *   transfer-refused KEY FROM CODE
 *                         transfer, expect LIC_SERVER_ERROR with that server code
 *   offline-deactivate FILE
 *                         deactivate offline: write the receipt to FILE, expect the store
 *                         empty (no_license), the same receipt again, then LIC_NOT_ACTIVATED
 *                         from validate
 *   lease KEY             floating seat (1 seat): check out, heartbeats on the background thread,
 *                         a second check-out denied with the exact message, check-in frees it
 *   idle KEY              floating seat (1 seat) held while active, on an injected clock: kept
 *                         while activity comes within the lease timeout (900 s), checked in
 *                         once idle past it (LIC_LEASE_IDLE, the seat free for another
 *                         client), the next activity denied with the exact message while the
 *                         seat is taken, and taking it again once it is free
 *   lease-lost KEY        check out, run $ONLINE_E2E_RELEASE_CMD (force-releases the seat through
 *                         the admin API), expect the loss callback (released, lease_released)
 *   queue KEY             the floating license's one seat taken, a second client served from
 *                         the wait line once it is checked in, a third one stopping its wait
 *   borrow KEY            borrow the floating license's one seat for a day (none borrowed
 *                         before): kept in the store, valid offline until its end, and another
 *                         check-out is denied with no_seats
 *   borrowed STATUS       the stored borrowed seat checked with no network, expect STATUS
 *   return KEY            return the borrowed seat early: gone from the store, the seat free
 *
 * MACHINE is the fingerprint override value. With $ONLINE_E2E_USER set, the client names that
 * user (lic_client_set_user, after its bad inputs are refused and a set user is cleared with
 * "" and with NULL) in the step's activations and validations. Prints "N passed, N failed";
 * exit 1 on failure.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
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

/* lic_client_set_user: bad input refused (the user unchanged), set, cleared with "" and with
 * NULL, then `user` set for the step. */
static void name_user(lic_client *client, const char *user) {
    char too_long[202];
    char text[512];
    size_t len = 0;
    memset(too_long, 'u', sizeof too_long - 1);
    too_long[sizeof too_long - 1] = '\0';
    CHECK(lic_client_set_user(NULL, user) == LIC_NULL_ARGUMENT);
    CHECK(lic_client_set_user(client, too_long) == LIC_INVALID_ARGUMENT);
    CHECK(lic_client_last_error(client, text, sizeof text, &len) == LIC_OK);
    CHECK(strstr(text, "1 to 200 characters") != NULL);
    too_long[200] = '\0'; /* 200 characters: the longest accepted */
    CHECK(lic_client_set_user(client, too_long) == LIC_OK);
    CHECK(lic_client_set_user(client, "a\tb") == LIC_INVALID_ARGUMENT);
    CHECK(lic_client_set_user(client, "\xff") == LIC_INVALID_UTF8);
    CHECK(lic_client_set_user(client, user) == LIC_OK);
    CHECK(lic_client_set_user(client, "") == LIC_OK);
    CHECK(lic_client_set_user(client, user) == LIC_OK);
    CHECK(lic_client_set_user(client, NULL) == LIC_OK);
    CHECK(lic_client_set_user(client, user) == LIC_OK);
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

/* What the loss callback saw; written on the library's heartbeat thread. */
struct lost {
    pthread_mutex_t lock;
    int calls;
    lic_lease_loss reason;
    char code[128];
    char detail[512];
};

static void on_lost(void *user_data, lic_lease_loss reason, const char *code, const char *detail) {
    struct lost *lost = user_data;
    pthread_mutex_lock(&lost->lock);
    lost->calls++;
    lost->reason = reason;
    snprintf(lost->code, sizeof lost->code, "%s", code);
    snprintf(lost->detail, sizeof lost->detail, "%s", detail);
    pthread_mutex_unlock(&lost->lock);
}

static int lost_calls(struct lost *lost) {
    int calls;
    pthread_mutex_lock(&lost->lock);
    calls = lost->calls;
    pthread_mutex_unlock(&lost->lock);
    return calls;
}

static void sleep_ms(long ms) {
    struct timespec pause = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&pause, NULL);
}

/* Waits (at most 30 s) until the lease has `want` accepted heartbeats. */
static void wait_heartbeats(const lic_lease *lease, uint64_t want) {
    uint64_t beats = 0;
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (lic_lease_heartbeats(lease, &beats) == LIC_OK && beats < want &&
           seconds_since(&start) < 30.0) {
        sleep_ms(20);
    }
    printf("heartbeats: %llu\n", (unsigned long long)beats);
    CHECK(beats >= want);
}

static void lease_steps(lic_client *client, const char *key) {
    lic_lease *lease = NULL, *denied = NULL, *again = NULL;
    char text[1024], code[128], *token = NULL;
    size_t len = 0;
    lic_result rc;
    rc = lic_lease_check_out(client, key, "c-seat-a", "ada", 100, NULL, NULL, &lease);
    if (rc != LIC_OK) {
        client_error(client, "lic_lease_check_out", rc);
    }
    CHECK(rc == LIC_OK);
    if (rc != LIC_OK) {
        return;
    }
    CHECK(lic_lease_status(lease) == LIC_STATUS_VALID);
    CHECK(lic_lease_token(lease, &token) == LIC_OK);
    CHECK(token != NULL && strncmp(token, "eyJ", 3) == 0);
    lic_string_free(token);
    wait_heartbeats(lease, 2);
    /* The one seat is taken: the specification's message, exactly, with code no_seats. */
    rc = lic_lease_check_out(client, key, "c-seat-b", "bob", 100, NULL, NULL, &denied);
    CHECK(rc == LIC_SERVER_ERROR);
    CHECK(denied == NULL);
    CHECK(lic_client_last_server_code(client, code, sizeof code, &len) == LIC_OK);
    CHECK(strcmp(code, "no_seats") == 0);
    CHECK(lic_client_last_error(client, text, sizeof text, &len) == LIC_OK);
    printf("denied: %s\n", text);
    CHECK(strstr(text, ": No available licenses, please contact IT") != NULL);
    /* Check-in frees it at once; the handle stays readable until freed. */
    CHECK(lic_lease_check_in(lease) == LIC_OK);
    CHECK(lic_lease_status(lease) == LIC_STATUS_LEASE_EXPIRED);
    CHECK(lic_lease_check_in(lease) == LIC_CHECKED_IN);
    CHECK(lic_lease_token(lease, &token) == LIC_CHECKED_IN);
    lic_lease_free(lease);
    rc = lic_lease_check_out(client, key, "c-seat-b", "bob", 0, NULL, NULL, &again);
    CHECK(rc == LIC_OK);
    CHECK(lic_lease_status(again) == LIC_STATUS_VALID);
    /* Freeing checks in. */
    lic_lease_free(again);
    rc = lic_lease_check_out(client, key, "c-seat-a", "ada", 0, NULL, NULL, &again);
    CHECK(rc == LIC_OK);
    lic_lease_free(again);
    CHECK(lic_lease_status(NULL) == LIC_STATUS_LEASE_REQUIRED);
    printf("lease: done\n");
}

/* The injected clock of the idle step: milliseconds moved by the test, read on any thread. */
static _Atomic uint64_t fake_ms = 1000000;

static uint64_t fake_clock(void *user_data) {
    (void)user_data;
    return atomic_load(&fake_ms);
}

static void advance_s(uint64_t seconds) {
    atomic_fetch_add(&fake_ms, seconds * 1000);
}

/* Waits for two more heartbeats than the lease has now. */
static void two_more_heartbeats(const lic_lease *lease) {
    uint64_t beats = 0;
    CHECK(lic_lease_heartbeats(lease, &beats) == LIC_OK);
    wait_heartbeats(lease, beats + 2);
}

static void idle_steps(lic_client *client, const char *key) {
    struct lost lost;
    lic_lease *lease = NULL, *other = NULL;
    lic_status status = LIC_STATUS_MALFORMED;
    char text[1024], code[128];
    size_t len = 0;
    struct timespec start;
    lic_result rc;
    memset(&lost, 0, sizeof lost);
    pthread_mutex_init(&lost.lock, NULL);
    rc = lic_lease_check_out_while_active(client, key, "c-idle-a", "ada", 100, fake_clock,
                                          on_lost, &lost, &lease);
    if (rc != LIC_OK) {
        client_error(client, "lic_lease_check_out_while_active", rc);
    }
    CHECK(rc == LIC_OK);
    if (rc != LIC_OK) {
        pthread_mutex_destroy(&lost.lock);
        return;
    }
    wait_heartbeats(lease, 2);
    /* In use: 600 s after the check-out, then 600 s after an activity (1 200 s in all, longer
     * than the 900 s timeout), the seat is held and heartbeated. */
    advance_s(600);
    two_more_heartbeats(lease);
    CHECK(lic_lease_activity(lease, &status) == LIC_OK);
    CHECK(status == LIC_STATUS_VALID);
    advance_s(600);
    two_more_heartbeats(lease);
    CHECK(lic_lease_status(lease) == LIC_STATUS_VALID);
    CHECK(lost_calls(&lost) == 0);
    /* Idle for the whole timeout: checked in, the app told. */
    advance_s(301);
    clock_gettime(CLOCK_MONOTONIC, &start);
    while (lost_calls(&lost) == 0 && seconds_since(&start) < 30.0) {
        sleep_ms(20);
    }
    pthread_mutex_lock(&lost.lock);
    printf("idle: reason %u code '%s': %s\n", (unsigned)lost.reason, lost.code, lost.detail);
    CHECK(lost.calls == 1);
    CHECK(lost.reason == LIC_LEASE_IDLE);
    pthread_mutex_unlock(&lost.lock);
    CHECK(lic_lease_status(lease) == LIC_STATUS_LEASE_EXPIRED);
    /* The seat is free for another client, who takes it. */
    rc = lic_lease_check_out(client, key, "c-idle-b", "bob", 0, NULL, NULL, &other);
    CHECK(rc == LIC_OK);
    /* The idle user comes back: denied with the specification's message, exactly. */
    status = LIC_STATUS_MALFORMED;
    CHECK(lic_lease_activity(lease, &status) == LIC_SERVER_ERROR);
    CHECK(status == LIC_STATUS_MALFORMED); /* out-parameters only on success */
    CHECK(lic_lease_last_server_code(lease, code, sizeof code, &len) == LIC_OK);
    CHECK(strcmp(code, "no_seats") == 0);
    CHECK(lic_lease_last_error(lease, text, sizeof text, &len) == LIC_OK);
    printf("idle user denied: %s\n", text);
    CHECK(strstr(text, ": No available licenses, please contact IT") != NULL);
    /* Freed: the seat comes back; after the pause, the next activity takes it again. */
    lic_lease_free(other);
    advance_s(15);
    CHECK(lic_lease_activity(lease, &status) == LIC_OK);
    CHECK(status == LIC_STATUS_VALID);
    CHECK(lic_lease_last_server_code(lease, code, sizeof code, &len) == LIC_OK);
    CHECK(strcmp(code, "") == 0);
    CHECK(lic_lease_status(lease) == LIC_STATUS_VALID);
    two_more_heartbeats(lease);
    CHECK(lic_lease_activity(NULL, &status) == LIC_NULL_ARGUMENT);
    CHECK(lic_lease_activity(lease, NULL) == LIC_NULL_ARGUMENT);
    /* Checked in: activity has no seat to report on. */
    CHECK(lic_lease_check_in(lease) == LIC_OK);
    CHECK(lic_lease_activity(lease, &status) == LIC_CHECKED_IN);
    lic_lease_free(lease);
    CHECK(lost_calls(&lost) == 1);
    pthread_mutex_destroy(&lost.lock);
    printf("idle: done\n");
}

static void lease_lost_steps(lic_client *client, const char *key) {
    struct lost lost;
    lic_lease *lease = NULL;
    const char *release = getenv("ONLINE_E2E_RELEASE_CMD");
    struct timespec start;
    lic_result rc;
    memset(&lost, 0, sizeof lost);
    pthread_mutex_init(&lost.lock, NULL);
    CHECK(release != NULL);
    rc = lic_lease_check_out(client, key, "c-seat-c", "cy", 100, on_lost, &lost, &lease);
    if (rc != LIC_OK) {
        client_error(client, "lic_lease_check_out", rc);
    }
    CHECK(rc == LIC_OK);
    if (rc == LIC_OK && release != NULL) {
        wait_heartbeats(lease, 1);
        CHECK(system(release) == 0);
        clock_gettime(CLOCK_MONOTONIC, &start);
        while (lost_calls(&lost) == 0 && seconds_since(&start) < 30.0) {
            sleep_ms(20);
        }
        pthread_mutex_lock(&lost.lock);
        printf("lost: reason %u code '%s': %s\n", (unsigned)lost.reason, lost.code, lost.detail);
        CHECK(lost.calls == 1);
        CHECK(lost.reason == LIC_LEASE_RELEASED);
        CHECK(strcmp(lost.code, "lease_released") == 0);
        pthread_mutex_unlock(&lost.lock);
        CHECK(lic_lease_status(lease) == LIC_STATUS_LEASE_EXPIRED);
        sleep_ms(300);
        CHECK(lost_calls(&lost) == 1);
    }
    lic_lease_free(lease);
    pthread_mutex_destroy(&lost.lock);
}

/* What the wait-line callback saw and does. */
struct line {
    int calls;
    uint64_t position, waiting;
    char message[256];
    lic_lease *holder; /* checked in at the first place, so the seat comes back */
    bool keep_waiting;
};

static bool on_place(void *user_data, uint64_t position, uint64_t waiting, const char *message) {
    struct line *line = user_data;
    line->calls++;
    line->position = position;
    line->waiting = waiting;
    snprintf(line->message, sizeof line->message, "%s", message);
    if (line->holder != NULL) {
        CHECK(lic_lease_check_in(line->holder) == LIC_OK);
        line->holder = NULL;
    }
    return line->keep_waiting;
}

/* The floating license's wait line (one seat, a line set by the vendor): a client waiting in
 * line is served once the seat is checked in; one that stops waiting gets LIC_STOPPED. */
static void queue_steps(lic_client *client, const char *key) {
    lic_lease *holder = NULL, *served = NULL, *stopped = NULL;
    struct line line;
    lic_result rc;
    memset(&line, 0, sizeof line);
    rc = lic_lease_check_out(client, key, "c-line-a", "ada", 0, NULL, NULL, &holder);
    CHECK(rc == LIC_OK);
    if (rc != LIC_OK) {
        client_error(client, "lic_lease_check_out", rc);
        return;
    }
    CHECK(lic_lease_check_out_waiting(client, key, "c-line-b", "bob", 0, 0, on_place, NULL, &line,
                                      &served) == LIC_INVALID_ARGUMENT);
    CHECK(served == NULL);
    line.holder = holder;
    line.keep_waiting = true;
    rc = lic_lease_check_out_waiting(client, key, "c-line-b", "bob", 0, 120, on_place, NULL, &line,
                                     &served);
    if (rc != LIC_OK) {
        client_error(client, "lic_lease_check_out_waiting", rc);
    }
    CHECK(rc == LIC_OK);
    printf("waited: %d place(s), last %llu of %llu: %s\n", line.calls,
           (unsigned long long)line.position, (unsigned long long)line.waiting, line.message);
    CHECK(line.calls == 1 && line.position == 1 && line.waiting == 1);
    CHECK(strcmp(line.message, "No available licenses, please contact IT") == 0);
    CHECK(lic_lease_status(served) == LIC_STATUS_VALID);
    /* The seat is bob's now: a third client waits, then stops at its first place. */
    memset(&line, 0, sizeof line);
    rc = lic_lease_check_out_waiting(client, key, "c-line-c", "cy", 0, 120, on_place, NULL, &line,
                                     &stopped);
    CHECK(rc == LIC_STOPPED);
    CHECK(stopped == NULL);
    CHECK(line.calls == 1 && line.position == 1);
    lic_lease_free(served);
    lic_lease_free(holder);
    printf("queue: done\n");
}

static lic_status borrowed_status(const lic_licensing *licensing, int64_t now, int64_t *end) {
    lic_status status = LIC_STATUS_MALFORMED;
    CHECK(lic_licensing_check_borrowed_seat(licensing, now, &status, end) == LIC_OK);
    return status;
}

static void borrow_steps(lic_client *client, lic_licensing *licensing, const char *key) {
    int64_t now = lic_unix_now(), expires_at = 0, end = -1;
    lic_lease *other = NULL;
    char code[128];
    size_t len = 0;
    lic_result rc;
    CHECK(borrowed_status(licensing, now, &end) == LIC_STATUS_LEASE_REQUIRED);
    CHECK(end == 0);
    rc = lic_client_borrow_seat(client, licensing, key, "c-laptop", "ada", 0, &expires_at);
    CHECK(rc == LIC_INVALID_ARGUMENT);
    rc = lic_client_borrow_seat(client, licensing, key, "c-laptop", "ada", 86400, &expires_at);
    if (rc != LIC_OK) {
        client_error(client, "lic_client_borrow_seat", rc);
    }
    CHECK(rc == LIC_OK);
    CHECK(expires_at >= now + 86400 && expires_at <= lic_unix_now() + 86400);
    CHECK(borrowed_status(licensing, now, &end) == LIC_STATUS_VALID);
    CHECK(end == expires_at);
    CHECK(borrowed_status(licensing, expires_at, NULL) == LIC_STATUS_LEASE_EXPIRED);
    CHECK(borrowed_status(licensing, now - 2 * 86400, NULL) == LIC_STATUS_CLOCK_TAMPERED);
    /* The one seat is borrowed: nobody else checks one out. */
    rc = lic_lease_check_out(client, key, "c-seat-z", "zoe", 0, NULL, NULL, &other);
    CHECK(rc == LIC_SERVER_ERROR && other == NULL);
    CHECK(lic_client_last_server_code(client, code, sizeof code, &len) == LIC_OK);
    CHECK(strcmp(code, "no_seats") == 0);
    lic_lease_free(other);
    printf("borrowed: done\n");
}

static void return_steps(lic_client *client, lic_licensing *licensing, const char *key) {
    lic_lease *other = NULL;
    bool returned = false;
    lic_result rc = lic_client_return_seat(client, licensing, key, &returned);
    if (rc != LIC_OK) {
        client_error(client, "lic_client_return_seat", rc);
    }
    CHECK(rc == LIC_OK && returned);
    CHECK(borrowed_status(licensing, lic_unix_now(), NULL) == LIC_STATUS_LEASE_REQUIRED);
    CHECK(lic_client_return_seat(client, licensing, key, &returned) == LIC_OK);
    CHECK(!returned);
    /* Free at once. */
    CHECK(lic_lease_check_out(client, key, "c-seat-z", "zoe", 0, NULL, NULL, &other) == LIC_OK);
    lic_lease_free(other);
    printf("returned: done\n");
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
    if (getenv("ONLINE_E2E_USER") != NULL) {
        name_user(client, getenv("ONLINE_E2E_USER"));
    }

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
    } else if (strcmp(step, "transfer") == 0 && argc == 8) {
        rc = lic_client_transfer(client, licensing, argv[6], argv[7], lic_unix_now(), &verdict);
        if (rc != LIC_OK) {
            client_error(client, "lic_client_transfer", rc);
        }
        CHECK(rc == LIC_OK);
        if (rc == LIC_OK) {
            expect_status(verdict, "valid");
        }
    } else if (strcmp(step, "transfer-refused") == 0 && argc == 9) {
        char code[128];
        size_t len = 0;
        rc = lic_client_transfer(client, licensing, argv[6], argv[7], lic_unix_now(), &verdict);
        client_error(client, "lic_client_transfer", rc);
        CHECK(rc == LIC_SERVER_ERROR);
        CHECK(verdict == NULL); /* out-parameters only on success */
        CHECK(lic_client_last_server_code(client, code, sizeof code, &len) == LIC_OK);
        CHECK(strcmp(code, argv[8]) == 0);
    } else if (strcmp(step, "offline-deactivate") == 0 && argc == 7) {
        char *receipt = NULL;
        char *again = NULL;
        FILE *out;
        rc = lic_client_offline_deactivate(client, licensing, lic_unix_now(), &receipt);
        if (rc != LIC_OK) {
            client_error(client, "lic_client_offline_deactivate", rc);
        }
        CHECK(rc == LIC_OK);
        if (rc == LIC_OK) {
            CHECK(strstr(receipt, "licensing.offline_deactivation_receipt") != NULL);
            out = fopen(argv[6], "w");
            CHECK(out != NULL);
            if (out != NULL) {
                fputs(receipt, out);
                fclose(out);
            }
            CHECK(lic_client_offline_deactivate(client, licensing, lic_unix_now(), &again) ==
                  LIC_OK);
            CHECK(again != NULL && strcmp(again, receipt) == 0);
            lic_string_free(again);
            lic_string_free(receipt);
        }
        CHECK(lic_licensing_check_at_startup(licensing, lic_unix_now(), &verdict) == LIC_OK);
        if (verdict != NULL) {
            expect_status(verdict, "no_license");
        }
        rc = lic_client_validate(client, licensing, lic_unix_now(), &verdict);
        CHECK(rc == LIC_NOT_ACTIVATED);
    } else if (strcmp(step, "lease") == 0 && argc == 7) {
        lease_steps(client, argv[6]);
    } else if (strcmp(step, "idle") == 0 && argc == 7) {
        idle_steps(client, argv[6]);
    } else if (strcmp(step, "lease-lost") == 0 && argc == 7) {
        lease_lost_steps(client, argv[6]);
    } else if (strcmp(step, "queue") == 0 && argc == 7) {
        queue_steps(client, argv[6]);
    } else if (strcmp(step, "borrow") == 0 && argc == 7) {
        borrow_steps(client, licensing, argv[6]);
    } else if (strcmp(step, "return") == 0 && argc == 7) {
        return_steps(client, licensing, argv[6]);
    } else if (strcmp(step, "borrowed") == 0 && argc == 7) {
        lic_status status = borrowed_status(licensing, lic_unix_now(), NULL);
        printf("borrowed status: %s\n", lic_status_name(status));
        CHECK(strcmp(lic_status_name(status), argv[6]) == 0);
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
