/*
 * crash.c -- the crash-point switch (see crash.h): parse SHMRT_CRASH_AT once,
 * count crossings, and die by SIGKILL at the armed one.
 */
#include "core.h"
#include "crash.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CP_NAME(id, name) name,
static const char *const names[] = {CRASH_POINTS(CP_NAME)};
#undef CP_NAME

int crash_armed = 0;
static int armed_point = -1;
static long long armed_n = 0, crossings = 0;
static char armed_role[16], my_role[16] = "client";
static char marker[512];

static int point_id(const char *name, size_t len) {
    for (int i = 0; i < CP__COUNT; i++)
        if (strlen(names[i]) == len && !strncmp(names[i], name, len)) return i;
    return -1;
}

/* SHMRT_CRASH_AT=<point>:<n>:<role>:<marker>; anything malformed disarms. */
void crash_init(void) {
    const char *spec = getenv("SHMRT_CRASH_AT");
    if (!spec || !*spec) return;
    const char *c1 = strchr(spec, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    const char *c3 = c2 ? strchr(c2 + 1, ':') : NULL;
    if (!c3 || (size_t)(c3 - c2 - 1) >= sizeof armed_role || strlen(c3 + 1) >= sizeof marker)
        return;
    armed_point = point_id(spec, (size_t)(c1 - spec));
    armed_n = strtoll(c1 + 1, NULL, 10);
    memcpy(armed_role, c2 + 1, (size_t)(c3 - c2 - 1));
    armed_role[c3 - c2 - 1] = 0;
    strcpy(marker, c3 + 1);
    crash_armed = armed_point >= 0 && armed_n > 0;
}

void crash_cross(int point) {
    if (point != armed_point || strcmp(my_role, armed_role)) return;
    if (++crossings != armed_n) return;
    int fd = open(marker, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) { /* somebody already died for this run */
        crash_armed = 0;
        return;
    }
    (void)!write(fd, names[point], strlen(names[point]));
    close(fd);
    kill(getpid(), SIGKILL);
}

/* ---- Python ------------------------------------------------------------- */
PyObject *crash_py_points(PyObject *self, PyObject *unused) {
    PyObject *t = PyTuple_New(CP__COUNT);
    for (int i = 0; t && i < CP__COUNT; i++) {
        PyObject *s = PyUnicode_FromString(names[i]);
        if (!s) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, s);
    }
    return t;
}

PyObject *crash_py_set_role(PyObject *self, PyObject *arg) {
    const char *role = PyUnicode_AsUTF8(arg);
    if (!role) return NULL;
    if (strlen(role) >= sizeof my_role) return PyErr_Format(PyExc_ValueError, "role too long");
    strcpy(my_role, role);
    Py_RETURN_NONE;
}

PyObject *crash_py_point(PyObject *self, PyObject *arg) {
    Py_ssize_t len;
    const char *name = PyUnicode_AsUTF8AndSize(arg, &len);
    if (!name) return NULL;
    int id = point_id(name, (size_t)len);
    if (id < 0) return PyErr_Format(PyExc_ValueError, "unknown crash point %R", arg);
    CRASH_POINT(id);
    Py_RETURN_NONE;
}

PyObject *crash_py_armed(PyObject *self, PyObject *unused) { return PyBool_FromLong(crash_armed); }
