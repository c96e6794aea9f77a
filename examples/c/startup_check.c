/*
 * A desktop app's licensing check at launch, in C, ready to copy.
 *
 *   startup_check --public-key keys/jwks.json [--product com.example.cad] [--store DIR]
 *                 [--install TOKEN_FILE] [--version 2.4.0] [--feature NAME]...
 *
 * A real app embeds its public keys (a string constant) and its version instead of taking them
 * as arguments. Without --store the license lives in the platform's user data directory for
 * com / Example / CAD.
 *
 * Exit status: 0 when the license may be used, 1 when not, 2 on setup errors.
 *
 * Build (see licensing-ffi/README.md):
 *   cc -std=c11 -Iinclude examples/c/startup_check.c -Ltarget/release -llicensing_ffi
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "licensing.h"

#define MAX_FEATURES 32

/* Reads a whole file; returns NULL on error. The caller frees. */
static char *read_file(const char *path, size_t *out_len) {
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    long size;
    if (f == NULL) {
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        data = malloc((size_t)size + 1);
        if (data != NULL && fread(data, 1, (size_t)size, f) == (size_t)size) {
            data[size] = '\0';
            *out_len = (size_t)size;
        } else {
            free(data);
            data = NULL;
        }
    }
    fclose(f);
    return data;
}

/* Prints a failed call with its message and returns exit status 2. */
static int setup_error(const char *what, lic_result code) {
    char message[1024];
    size_t len = 0;
    if (lic_last_error(message, sizeof message, &len) != LIC_OK) {
        message[0] = '\0';
    }
    fprintf(stderr, "startup_check: %s: %s (%s)\n", what, lic_result_message(code), message);
    return 2;
}

static void print_features(const lic_verdict *verdict) {
    size_t count = 0, i;
    if (lic_verdict_feature_count(verdict, &count) != LIC_OK) {
        return;
    }
    for (i = 0; i < count; i++) {
        lic_feature *feature = NULL;
        char *name = NULL;
        lic_status status = LIC_STATUS_FEATURE_NOT_ENTITLED;
        if (lic_verdict_feature_at(verdict, i, &feature) == LIC_OK &&
            lic_feature_name(feature, &name) == LIC_OK &&
            lic_feature_status(feature, &status) == LIC_OK) {
            printf("feature %s: %s\n", name, lic_status_name(status));
        }
        lic_string_free(name);
        lic_feature_free(feature);
    }
}

int main(int argc, char **argv) {
    const char *public_key = NULL, *product = "com.example.cad", *store_dir = NULL;
    const char *install = NULL, *version = NULL;
    const char *features[MAX_FEATURES];
    size_t feature_count = 0, keys_len = 0, i;
    char *keys = NULL, *reason = NULL;
    lic_trust_store *trust = NULL;
    lic_license_store *store = NULL;
    lic_context *context = NULL;
    lic_licensing *licensing = NULL;
    lic_verdict *verdict = NULL;
    lic_status status = LIC_STATUS_NO_LICENSE;
    lic_result rc;
    bool has_grace = false;
    int64_t grace_left = 0;
    int exit_code = 2;
    int n;

    for (n = 1; n < argc; n++) {
        const char *flag = argv[n];
        const char *value = n + 1 < argc ? argv[n + 1] : NULL;
        if (value == NULL) {
            fprintf(stderr, "startup_check: %s needs a value\n", flag);
            return 2;
        }
        if (strcmp(flag, "--public-key") == 0) {
            public_key = value;
        } else if (strcmp(flag, "--product") == 0) {
            product = value;
        } else if (strcmp(flag, "--store") == 0) {
            store_dir = value;
        } else if (strcmp(flag, "--install") == 0) {
            install = value;
        } else if (strcmp(flag, "--version") == 0) {
            version = value;
        } else if (strcmp(flag, "--feature") == 0 && feature_count < MAX_FEATURES) {
            features[feature_count++] = value;
        } else {
            fprintf(stderr, "startup_check: unknown argument %s\n", flag);
            return 2;
        }
        n++;
    }
    if (public_key == NULL) {
        fprintf(stderr, "startup_check: --public-key is required\n");
        return 2;
    }

    keys = read_file(public_key, &keys_len);
    if (keys == NULL) {
        fprintf(stderr, "startup_check: cannot read %s\n", public_key);
        return 2;
    }
    if ((rc = lic_trust_store_new(&trust)) != LIC_OK ||
        (rc = lic_trust_store_add_document(trust, keys, keys_len)) != LIC_OK) {
        exit_code = setup_error("loading the public keys", rc);
        goto done;
    }
    rc = store_dir != NULL
             ? lic_license_store_open(store_dir, &store)
             : lic_license_store_for_app("com", "Example", "CAD", LIC_SCOPE_USER, &store);
    if (rc != LIC_OK) {
        exit_code = setup_error("opening the license store", rc);
        goto done;
    }
    /* What the app asks about at every check: its version and features. */
    if ((rc = lic_context_new(0, &context)) != LIC_OK ||
        (version != NULL && (rc = lic_context_set_version(context, version)) != LIC_OK)) {
        exit_code = setup_error("setting the version", rc);
        goto done;
    }
    for (i = 0; i < feature_count; i++) {
        if ((rc = lic_context_add_feature(context, features[i])) != LIC_OK) {
            exit_code = setup_error("adding a feature", rc);
            goto done;
        }
    }
    if ((rc = lic_licensing_new(trust, product, store, context, &licensing)) != LIC_OK) {
        exit_code = setup_error("creating the licensing", rc);
        goto done;
    }

    if (install != NULL) {
        size_t token_len = 0;
        char *token = read_file(install, &token_len);
        if (token == NULL) {
            fprintf(stderr, "startup_check: cannot read %s\n", install);
            goto done;
        }
        rc = lic_licensing_install(licensing, token, token_len, lic_unix_now(), &verdict);
        free(token);
        if (rc != LIC_OK) {
            exit_code = setup_error("installing the license", rc);
            goto done;
        }
        if (lic_verdict_status(verdict, &status) == LIC_OK &&
            lic_verdict_reason(verdict, &reason) == LIC_OK) {
            printf("install: %s (%s)\n", lic_status_name(status), reason);
        }
        lic_string_free(reason);
        reason = NULL;
        lic_verdict_free(verdict);
        verdict = NULL;
    }

    /* The check at launch. */
    if ((rc = lic_licensing_check_at_startup(licensing, lic_unix_now(), &verdict)) != LIC_OK ||
        (rc = lic_verdict_status(verdict, &status)) != LIC_OK ||
        (rc = lic_verdict_reason(verdict, &reason)) != LIC_OK) {
        exit_code = setup_error("checking the license", rc);
        goto done;
    }
    printf("license: %s (%s)\n", lic_status_name(status), reason);
    if (lic_verdict_grace_left(verdict, &has_grace, &grace_left) == LIC_OK && has_grace) {
        printf("grace period: %lld days left, please renew\n", (long long)(grace_left / 86400));
    }
    print_features(verdict);
    if (status == LIC_STATUS_NO_LICENSE) {
        printf("=> show the activation dialog\n");
    } else if (status == LIC_STATUS_CLOCK_TAMPERED) {
        printf("=> ask the user to correct the system clock\n");
    } else if (lic_verdict_is_usable(verdict)) {
        printf("=> start the app\n");
    } else {
        printf("=> the app may not start: %s\n", lic_status_message(status));
    }
    exit_code = lic_verdict_is_usable(verdict) ? 0 : 1;

done:
    lic_string_free(reason);
    lic_verdict_free(verdict);
    lic_licensing_free(licensing);
    lic_context_free(context);
    lic_license_store_free(store);
    lic_trust_store_free(trust);
    free(keys);
    return exit_code;
}
