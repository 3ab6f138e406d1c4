/* Uses every function of libshipshape, the error paths included, and
 * frees everything it is given: run under valgrind by the ffi crate's
 * tests, which must report no leaks and no invalid accesses.
 *
 *   exercise WORKDIR [RESOLVER NAME EXPECTED]
 *
 * With RESOLVER (IP:PORT), NAME must resolve to EXPECTED (an A record)
 * there, and nope.NAME must not exist. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shipshape.h"

static const char *error_text(void) {
    const char *e = shipshape_last_error();
    return e ? e : "(no error)";
}

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "%s:%d: CHECK(%s) failed; last error: %s\n", __FILE__,       \
                    __LINE__, #cond, error_text());                                      \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

/* The call failed, and the last error mentions `part`. */
#define FAILS_WITH(call, part)                                                           \
    do {                                                                                 \
        CHECK((call) == SHIPSHAPE_ERROR);                                                \
        CHECK(shipshape_last_error() != NULL);                                           \
        CHECK(strstr(shipshape_last_error(), (part)) != NULL);                           \
    } while (0)

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    CHECK(fputs(text, f) >= 0);
    CHECK(fclose(f) == 0);
}

static char *read_file(const char *path) {
    static char buf[4096];
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

int main(int argc, char **argv) {
    CHECK(argc == 2 || argc == 5);
    const char *dir = argv[1];
    char identity[1024], repo[1024], data[1024], target[1024], file[2048];
    snprintf(identity, sizeof identity, "%s/identity.txt", dir);
    snprintf(repo, sizeof repo, "%s/repo", dir);
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(target, sizeof target, "%s/restored", dir);
    CHECK(mkdir(data, 0700) == 0);
    /* No repository there yet: every call refuses it, and says how to make one. */
    char *missing = NULL;
    FAILS_WITH(shipshape_list(repo, &missing), "no Shipshape repository");
    CHECK(shipshape_init(repo) == SHIPSHAPE_OK);
    FAILS_WITH(shipshape_init(repo), "already");
    snprintf(file, sizeof file, "%s/hello.txt", data);
    write_file(file, "hello from C\n");

    /* version */
    CHECK(strlen(shipshape_version()) > 0);

    /* keygen; a second one over the same file is refused */
    char *recipient = NULL;
    CHECK(shipshape_keygen(identity, &recipient) == SHIPSHAPE_OK);
    CHECK(strncmp(recipient, "age1", 4) == 0);
    CHECK(shipshape_last_error() == NULL);
    char *again = NULL;
    CHECK(shipshape_keygen(identity, &again) == SHIPSHAPE_ERROR);
    CHECK(again == NULL && shipshape_last_error() != NULL);

    /* backup a directory, then a pipe */
    char options[4096];
    snprintf(options, sizeof options, "{\"recipients\":[\"%s\"],\"name\":\"c-dir\"}", recipient);
    char *manifest = NULL;
    CHECK(shipshape_backup_path(repo, data, options, &manifest) == SHIPSHAPE_OK);
    CHECK(strstr(manifest, "\"c-dir\"") != NULL);
    shipshape_string_free(manifest);

    int fds[2];
    CHECK(pipe(fds) == 0);
    CHECK(write(fds[1], "streamed bytes\n", 15) == 15);
    CHECK(close(fds[1]) == 0);
    snprintf(options, sizeof options, "{\"recipients\":[\"%s\"],\"name\":\"c-stream\",\"level\":5}", recipient);
    CHECK(shipshape_backup_fd(repo, fds[0], options, &manifest) == SHIPSHAPE_OK);
    CHECK(strstr(manifest, "\"c-stream\"") != NULL);
    shipshape_string_free(manifest);
    CHECK(close(fds[0]) == 0); /* still ours: the library read a duplicate */

    /* any source, as backupctl and the jobs config write it, to a recipients
       file; restored with the identity named in the options */
    char recipients[1024], command_target[2048];
    snprintf(recipients, sizeof recipients, "%s/recipients.txt", dir);
    snprintf(file, sizeof file, "# ops\n%s\n", recipient);
    write_file(recipients, file);
    snprintf(options, sizeof options, "{\"recipients_file\":\"%s\",\"name\":\"c-command\"}", recipients);
    CHECK(shipshape_backup(repo, "{\"command\":[\"sh\",\"-c\",\"echo from a command\"]}", options,
                           &manifest) == SHIPSHAPE_OK);
    CHECK(strstr(manifest, "\"kind\":\"command\"") != NULL && strstr(manifest, recipient) != NULL);
    shipshape_string_free(manifest);
    snprintf(command_target, sizeof command_target, "%s/command.out", dir);
    snprintf(options, sizeof options, "{\"identity_file\":\"%s\"}", identity);
    CHECK(shipshape_restore(repo, "latest:c-command", NULL, command_target, options) == SHIPSHAPE_OK);
    CHECK(strcmp(read_file(command_target), "from a command\n") == 0);
    snprintf(options, sizeof options, "{\"recipients_file\":\"%s\",\"name\":\"c-text\"}", recipients);
    CHECK(shipshape_backup(repo, data, options, &manifest) == SHIPSHAPE_OK);
    CHECK(strstr(manifest, "\"kind\":\"directory\"") != NULL);
    shipshape_string_free(manifest);
    /* an identity file as the key: its public key is the recipient */
    snprintf(options, sizeof options, "{\"identity_file\":\"%s\",\"name\":\"c-identity\"}", identity);
    CHECK(shipshape_backup(repo, "-", options, &manifest) == SHIPSHAPE_OK);
    CHECK(strstr(manifest, recipient) != NULL && strstr(manifest, "\"kind\":\"stdin\"") != NULL);
    shipshape_string_free(manifest);
    FAILS_WITH(shipshape_backup(repo, "docker-volume:", options, &manifest), "docker-volume:NAME");
    FAILS_WITH(shipshape_backup(repo, "{\"path\":\"/a\",\"command\":[\"x\"]}", options, &manifest),
               "exactly one of");
    FAILS_WITH(shipshape_backup(repo, "postgres://u:hunter2@127.0.0.1/db", options, &manifest),
               "password_env");
    CHECK(strstr(shipshape_last_error(), "hunter2") == NULL);

    /* list, verify, restore */
    char *list = NULL;
    CHECK(shipshape_list(repo, &list) == SHIPSHAPE_OK);
    CHECK(strstr(list, "c-dir") != NULL && strstr(list, "c-stream") != NULL);
    shipshape_string_free(list);

    char *report = NULL;
    CHECK(shipshape_verify(repo, "latest:c-stream", identity, NULL, &report) == SHIPSHAPE_OK);
    CHECK(strstr(report, "\"raw\":15") != NULL);
    shipshape_string_free(report);

    CHECK(shipshape_restore(repo, "latest:c-dir", identity, target, NULL) == SHIPSHAPE_OK);
    snprintf(file, sizeof file, "%s/hello.txt", target);
    CHECK(strcmp(read_file(file), "hello from C\n") == 0);
    FAILS_WITH(shipshape_restore(repo, "latest:c-dir", identity, target, "{}"), "force");
    CHECK(shipshape_restore(repo, "latest:c-dir", identity, target, "{\"force\":true}") == SHIPSHAPE_OK);
    FAILS_WITH(shipshape_restore(repo, "no-such-backup", identity, target, NULL), "no-such-backup");

    /* metrics */
    char *metrics = NULL;
    CHECK(shipshape_metrics_snapshot(NULL, SHIPSHAPE_FORMAT_PROMETHEUS, &metrics) == SHIPSHAPE_OK);
    CHECK(strstr(metrics, "shipshape_host_") != NULL);
    shipshape_string_free(metrics);
    CHECK(shipshape_metrics_snapshot("[host]\n", SHIPSHAPE_FORMAT_OPENMETRICS, &metrics) == SHIPSHAPE_OK);
    CHECK(strstr(metrics, "# EOF") != NULL);
    shipshape_string_free(metrics);
    CHECK(shipshape_metrics_snapshot(NULL, SHIPSHAPE_FORMAT_JSON, &metrics) == SHIPSHAPE_OK);
    CHECK(metrics[0] == '{');
    shipshape_string_free(metrics);
    metrics = NULL;
    FAILS_WITH(shipshape_metrics_snapshot(NULL, 9, &metrics), "format");
    FAILS_WITH(shipshape_metrics_snapshot("[host", 0, &metrics), "");
    CHECK(metrics == NULL);

    /* DNS */
    char *dns = NULL;
    if (argc == 5) {
        char dns_options[512], nope[512];
        snprintf(dns_options, sizeof dns_options, "{\"resolvers\":[\"%s\"],\"expect\":[\"%s\"]}", argv[2], argv[4]);
        CHECK(shipshape_dns_check(argv[3], "A", dns_options, &dns) == SHIPSHAPE_OK);
        CHECK(strstr(dns, "NOERROR") != NULL);
        shipshape_string_free(dns);
        snprintf(nope, sizeof nope, "nope.%s", argv[3]);
        CHECK(shipshape_dns_check(nope, "A", dns_options, &dns) == 1);
        CHECK(strstr(dns, "NXDOMAIN") != NULL);
        shipshape_string_free(dns);
    }
    /* a resolver that refuses the connection: the check runs, nobody agrees */
    CHECK(shipshape_dns_check("example.test", "A", "{\"resolvers\":[\"127.0.0.1:1\"],\"timeout_ms\":500}", &dns) == 1);
    shipshape_string_free(dns);
    /* durations are written as everywhere else: 500ms, 90s, 1h30m */
    CHECK(shipshape_dns_check("example.test", "A", "{\"resolvers\":[\"127.0.0.1:1\"],\"timeout\":\"500ms\"}", &dns) == 1);
    shipshape_string_free(dns);
    dns = NULL;
    FAILS_WITH(shipshape_dns_check("example.test", "BOGUS", NULL, &dns), "unknown record type");
    FAILS_WITH(shipshape_dns_check("example.test", "A", "{\"resolvers\":[\"not an address\"]}", &dns), "options");
    CHECK(dns == NULL);

    /* rate limiter: 2 per minute per client (and a window of 1h30m parses) */
    ShipshapeRateLimiter *limiter = NULL;
    CHECK(shipshape_ratelimiter_new("{\"limit\":2,\"window\":\"1h30m\"}", &limiter) == SHIPSHAPE_OK);
    shipshape_ratelimiter_free(limiter);
    limiter = NULL;
    CHECK(shipshape_ratelimiter_new("{\"limit\":2,\"window\":\"1m\"}", &limiter) == SHIPSHAPE_OK);
    CHECK(shipshape_ratelimiter_check(limiter, "192.0.2.1", NULL) == 1);
    CHECK(shipshape_ratelimiter_check(limiter, "192.0.2.1", NULL) == 1);
    char *decision = NULL;
    CHECK(shipshape_ratelimiter_check(limiter, "192.0.2.1", &decision) == 0);
    CHECK(strstr(decision, "\"allowed\":false") != NULL && strstr(decision, "retry_after_secs") != NULL);
    shipshape_string_free(decision);
    CHECK(shipshape_ratelimiter_check(limiter, "192.0.2.2", NULL) == 1);
    FAILS_WITH(shipshape_ratelimiter_check(limiter, NULL, NULL), "null");
    shipshape_ratelimiter_free(limiter);
    ShipshapeRateLimiter *bad = NULL;
    FAILS_WITH(shipshape_ratelimiter_new("{\"limit\":0,\"window\":\"1m\"}", &bad), "policy_json");
    FAILS_WITH(shipshape_ratelimiter_new("{\"limit\":5,\"window\":\"1m\"}", NULL), "null");
    CHECK(bad == NULL);
    FAILS_WITH(shipshape_ratelimiter_check(NULL, "k", NULL), "null");

    /* null pointers, invalid UTF-8, bad options: errors, not crashes */
    char *out = NULL;
    FAILS_WITH(shipshape_list(NULL, &out), "repo is a null pointer");
    FAILS_WITH(shipshape_list(repo, NULL), "output pointer is null");
    const char bad_utf8[] = {'/', 't', 'm', 'p', '/', (char)0xff, '\0'};
    FAILS_WITH(shipshape_list(bad_utf8, &out), "UTF-8");
    FAILS_WITH(shipshape_backup_path(repo, data, "{not json", &out), "options");
    FAILS_WITH(shipshape_backup_path(repo, data, "{}", &out), "recipients");
    FAILS_WITH(shipshape_backup_path(repo, data, NULL, &out), "recipients");
    FAILS_WITH(shipshape_backup_fd(repo, -1, options, &out), "file descriptor");
    FAILS_WITH(shipshape_verify(repo, "latest", "/nonexistent/identity", NULL, &out), "identity");
    FAILS_WITH(shipshape_verify(repo, "latest", NULL, NULL, &out), "no passphrase");
    FAILS_WITH(shipshape_verify(repo, "latest", identity, "{\"force\":true}", &out), "unknown field");
    FAILS_WITH(shipshape_restore(repo, "latest", NULL, target,
                                 "{\"passphrase_file\":\"/a\",\"passphrase_env\":\"B\"}"),
               "not both");
    /* passphrases come from a file or a variable, never the options themselves */
    snprintf(options, sizeof options, "{\"recipients\":[\"%s\"],\"passphrase_env\":\"X\"}", recipient);
    FAILS_WITH(shipshape_backup_path(repo, data, options, &out), "not both");
    FAILS_WITH(shipshape_backup_path(repo, data, "{\"passphrase_env\":\"SHIPSHAPE_C_UNSET\"}", &out),
               "SHIPSHAPE_C_UNSET is not set");
    FAILS_WITH(shipshape_backup_path(repo, data, "{\"passphrase\":\"hunter2\"}", &out), "unknown field");
    FAILS_WITH(shipshape_keygen(NULL, &out), "null");
    CHECK(out == NULL);
    shipshape_string_free(NULL);
    shipshape_ratelimiter_free(NULL);

    /* a success clears the last error */
    CHECK(shipshape_list(repo, &out) == SHIPSHAPE_OK);
    CHECK(shipshape_last_error() == NULL);
    shipshape_string_free(out);

    shipshape_string_free(recipient);
    puts("exercise: ok");
    return 0;
}
