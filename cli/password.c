/* password.c - where the password comes from: never from argv. */
#include "cli/cli.h"
#include "common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <sys/wait.h>
#include <unistd.h>

/* The file is read with read(2) into a buffer that is wiped, not with stdio,
 * whose buffer would keep a copy of the password in freed memory (and so in
 * a core dump). */
static int read_file_secret(const char *path, char **out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char buf[4096];
	size_t n = 0;
	int rc = CF_OK;
	if (fd < 0)
		return cf_err_errno("password file %s", path);
	while (n < sizeof(buf) - 1) {
		ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = cf_err(CF_EIO, "cannot read password file %s", path);
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = 0;
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = 0;
	if (!n) {
		rc = cf_err(CF_EINVAL, "password file %s is empty", path);
		goto out;
	}
	if (!(*out = strdup(buf)))
		rc = cf_err(CF_ENOMEM, "out of memory");
out:
	close(fd);
	explicit_bzero(buf, sizeof(buf));
	return rc;
}

/* The first line CMD (run with /bin/sh -c; stdin and stderr the caller's,
 * so it may ask on the terminal) prints: read into a buffer that is wiped,
 * as the file.  A non-zero exit, a signal or an empty line is an error. */
static int run_command_secret(const char *cmd, char **out)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return cf_err_errno("password command: pipe");
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return cf_err_errno("password command: fork");
	}
	if (pid == 0) {
		dup2(p[1], 1);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	char buf[4096];
	size_t n = 0;
	int rc = CF_OK;
	while (n < sizeof(buf) - 1) {
		ssize_t r = read(p[0], buf + n, sizeof(buf) - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	bool too_much = n == sizeof(buf) - 1;
	close(p[0]);
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	buf[n] = 0;
	buf[strcspn(buf, "\r\n")] = 0;
	if (too_much)
		rc = cf_err(CF_EINVAL, "password command printed more than %zu bytes: not a password",
			    sizeof(buf) - 2);
	else if (WIFSIGNALED(status))
		rc = cf_err(CF_EINVAL, "password command was killed by signal %d", WTERMSIG(status));
	else if (WEXITSTATUS(status))
		rc = cf_err(CF_EINVAL, "password command exited with status %d", WEXITSTATUS(status));
	else if (!buf[0])
		rc = cf_err(CF_EINVAL, "password command printed no password");
	else if (!(*out = strdup(buf)))
		rc = cf_err(CF_ENOMEM, "out of memory");
	explicit_bzero(buf, sizeof(buf));
	return rc;
}

/* A user coming from restic may have its variables set: say which name
 * coffer reads instead of only "no password". */
static const char *restic_hint(void)
{
	if (getenv("RESTIC_PASSWORD_FILE"))
		return " (RESTIC_PASSWORD_FILE is set: coffer reads COFFER_PASSWORD_FILE)";
	if (getenv("RESTIC_PASSWORD_COMMAND"))
		return " (RESTIC_PASSWORD_COMMAND is set: coffer reads COFFER_PASSWORD_COMMAND)";
	if (getenv("RESTIC_PASSWORD"))
		return " (RESTIC_PASSWORD is set: coffer reads COFFER_PASSWORD)";
	return "";
}

static int prompt(const char *what, char **out)
{
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
	struct termios old, noecho;
	char buf[1024];
	if (fd < 0)
		return cf_err(CF_EINVAL, "no password given: set COFFER_PASSWORD_FILE (or "
			      "COFFER_PASSWORD_COMMAND, COFFER_PASSWORD), or use --password-file%s",
			      restic_hint());
	dprintf(fd, "%s: ", what);
	bool restore = tcgetattr(fd, &old) == 0;
	if (restore) {
		noecho = old;
		noecho.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(fd, TCSAFLUSH, &noecho);
	}
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	if (restore)
		tcsetattr(fd, TCSAFLUSH, &old);
	dprintf(fd, "\n");
	close(fd);
	if (n <= 0)
		return cf_err(CF_EINVAL, "no password entered");
	buf[n] = 0;
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = 0;
	if (!n)
		return cf_err(CF_EINVAL, "empty password");
	*out = strdup(buf);
	explicit_bzero(buf, sizeof(buf));
	return *out ? CF_OK : cf_err(CF_ENOMEM, "out of memory");
}

int cli_password(const struct cli *c, bool twice, char **out)
{
	const char *f = c->password_file, *cmd = c->password_command;
	const char *p = getenv("COFFER_PASSWORD");
	*out = NULL;
	if (f && cmd)
		return cf_err(CF_EINVAL, "give --password-file or --password-command, not both");
	if (!f && !cmd) {
		f = getenv("COFFER_PASSWORD_FILE");
		if (!f || !*f)
			cmd = getenv("COFFER_PASSWORD_COMMAND");
	}
	if (f && *f)
		return read_file_secret(f, out);
	if (cmd && *cmd)
		return run_command_secret(cmd, out);
	if (p && *p) {
		*out = strdup(p);
		return *out ? CF_OK : cf_err(CF_ENOMEM, "out of memory");
	}
	return cli_prompt_new(twice ? "enter password for the new repository" : "enter password", twice, out);
}

int cli_prompt_new(const char *what, bool twice, char **out)
{
	int rc = prompt(what, out);
	if (rc || !twice)
		return rc;
	char *again = NULL;
	if ((rc = prompt("enter the password again", &again))) {
		cli_password_free(*out);
		*out = NULL;
		return rc;
	}
	bool same = strcmp(*out, again) == 0;
	cli_password_free(again);
	if (!same) {
		cli_password_free(*out);
		*out = NULL;
		return cf_err(CF_EINVAL, "the passwords do not match");
	}
	return CF_OK;
}

int cli_new_password(const struct cli *c, char **out)
{
	if (c->new_password_file)
		return read_file_secret(c->new_password_file, out);
	return cli_prompt_new("enter the new password", true, out);
}

void cli_password_free(char *p)
{
	if (p) {
		explicit_bzero(p, strlen(p));
		free(p);
	}
}
