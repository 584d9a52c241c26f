/*
 * pullsnap grabber launcher: the grabber user's login shell.
 *
 * Installed with file capabilities "cap_...=p" (permitted only), mode 0750,
 * owned root:<grabber's group>, so only that group can run it.  On execve the
 * kernel puts the file's permitted capabilities into our permitted set and
 * nothing into the effective set (capabilities(7), "Transformation of
 * capabilities during execve()").  We copy the permitted set into the
 * inheritable set and raise each capability ambient, because only ambient
 * capabilities survive the execve of an interpreter without file
 * capabilities, and later an execve under no_new_privs (prctl(2)).
 *
 * Nothing the caller controls picks what runs: the interpreter and module are
 * compiled in, and the environment is rebuilt from a short allow-list.  The
 * file capabilities make this a secure-execution program (AT_SECURE), so
 * ld.so already ignores LD_PRELOAD and friends (ld.so(8)).
 *
 * Build: cc -O2 -Wall -DPULLSNAP_PYTHON='"/usr/bin/python3"' launcher.c -lcap
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

#ifndef PULLSNAP_PYTHON
#error "define PULLSNAP_PYTHON as the absolute path of the Python interpreter"
#endif
#ifndef GRABBER_MODULE
#define GRABBER_MODULE "pullsnap.grabber.login"
#endif
#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#endif

/* Variables sshd sets for a session (sshd(8) ENVIRONMENT) that the grabber reads. */
static const char *const keep_vars[] = {
	"SSH_CONNECTION", "SSH_CLIENT", "SSH_ORIGINAL_COMMAND", "USER",
	"LOGNAME", "HOME", "SHELL", "LANG", NULL,
};
static const char safe_path[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";

static void die(const char *what)
{
	fprintf(stderr, "pullsnap-launcher error: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* Permitted -> inheritable, then raise every permitted capability ambient. */
static void pass_capabilities_on(void)
{
	cap_t caps = cap_get_proc();
	cap_value_t cap, last = (cap_value_t)cap_max_bits() - 1;
	cap_flag_value_t permitted;

	if (caps == NULL)
		die("cap_get_proc");
	for (cap = 0; cap <= last; cap++) {
		if (cap_get_flag(caps, cap, CAP_PERMITTED, &permitted) != 0)
			die("cap_get_flag");
		if (permitted == CAP_SET && cap_set_flag(caps, CAP_INHERITABLE, 1, &cap, CAP_SET) != 0)
			die("cap_set_flag");
	}
	if (cap_set_proc(caps) != 0)
		die("cap_set_proc");
	for (cap = 0; cap <= last; cap++) {
		if (cap_get_flag(caps, cap, CAP_PERMITTED, &permitted) != 0)
			die("cap_get_flag");
		if (permitted == CAP_SET &&
		    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, (unsigned long)cap, 0UL, 0UL) != 0)
			die("raising an ambient capability");
	}
	cap_free(caps);
}

/* A new environment: the first occurrence of each allowed name, and PATH. */
static char **safe_environment(char **env)
{
	size_t n_keep = sizeof(keep_vars) / sizeof(keep_vars[0]) - 1;
	char **out = calloc(n_keep + 2, sizeof(char *));
	size_t used = 0, i;

	if (out == NULL)
		die("calloc");
	for (i = 0; keep_vars[i] != NULL; i++) {
		size_t len = strlen(keep_vars[i]);
		char **e;

		for (e = env; e != NULL && *e != NULL; e++) {
			if (strncmp(*e, keep_vars[i], len) == 0 && (*e)[len] == '=') {
				out[used++] = *e;
				break;
			}
		}
	}
	out[used++] = (char *)safe_path;
	out[used] = NULL;
	return out;
}

int main(int argc, char **argv)
{
	extern char **environ;
	char **args = calloc((size_t)argc + 4, sizeof(char *));
	int i, n = 0;

	if (args == NULL)
		die("calloc");
	pass_capabilities_on();
	args[n++] = PULLSNAP_PYTHON;
	args[n++] = "-I"; /* isolated: no PYTHON* variables, no user site, no cwd on sys.path */
	args[n++] = "-m";
	args[n++] = GRABBER_MODULE;
	for (i = 1; i < argc; i++)
		args[n++] = argv[i];
	args[n] = NULL;
	execve(PULLSNAP_PYTHON, args, safe_environment(environ));
	die("execve " PULLSNAP_PYTHON);
	return 1;
}
