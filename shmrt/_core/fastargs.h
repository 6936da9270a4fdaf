/*
 * fastargs.h -- argument parsing and result tuples for the methods called
 * once or more per task (METH_FASTCALL: submit, harvest, begin, finish, the
 * scheduler's queue steps, the client's spin and wait).
 *
 * Why: PyArg_ParseTuple interprets its format string on every call and
 * Py_BuildValue another; together they were ~2,300 of the ~26,000
 * instructions a client spends per task (callgrind, spawn_many).  The
 * conversions here keep PyArg's semantics for the codes they replace:
 *
 *   code  function  accepts                     on a bad value
 *   K     fa_K      int, masked to 64 bits      TypeError (not an int); a
 *                                               bad id is then refused by
 *                                               the bounds checks
 *   L     fa_L      int                         TypeError / OverflowError
 *   d     fa_d      float, or int / __float__   TypeError
 *   p     fa_p      anything (its truth)        the truth test's error
 *   y*    fa_y      a bytes-like object         TypeError
 *
 * One error convention, as everywhere in the core: 0, or -1 with a Python
 * exception set.
 */
#ifndef SHMRT_FASTARGS_H
#define SHMRT_FASTARGS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* lo <= n <= hi, else TypeError naming the method. */
static inline int fa_nargs(const char *name, Py_ssize_t n, Py_ssize_t lo, Py_ssize_t hi) {
    if (n >= lo && n <= hi) return 0;
    if (lo == hi)
        PyErr_Format(PyExc_TypeError, "%s() takes exactly %zd arguments (%zd given)", name, lo,
                     n);
    else
        PyErr_Format(PyExc_TypeError, "%s() takes from %zd to %zd arguments (%zd given)", name,
                     lo, hi, n);
    return -1;
}

static inline int fa_not_int(PyObject *o) {
    PyErr_Format(PyExc_TypeError, "an integer is required, not %.100s", Py_TYPE(o)->tp_name);
    return -1;
}

static inline int fa_K(PyObject *o, unsigned long long *v) {
    if (!PyLong_Check(o)) return fa_not_int(o);
    *v = PyLong_AsUnsignedLongLongMask(o);
    return *v == (unsigned long long)-1 && PyErr_Occurred() ? -1 : 0;
}

static inline int fa_L(PyObject *o, long long *v) {
    if (!PyLong_Check(o)) return fa_not_int(o);
    *v = PyLong_AsLongLong(o);
    return *v == -1 && PyErr_Occurred() ? -1 : 0;
}

static inline int fa_d(PyObject *o, double *v) {
    *v = PyFloat_AsDouble(o);
    return *v == -1.0 && PyErr_Occurred() ? -1 : 0;
}

static inline int fa_p(PyObject *o, int *v) {
    int r = PyObject_IsTrue(o);
    if (r < 0) return -1;
    *v = r;
    return 0;
}

/* A C-contiguous buffer; the caller releases it (PyBuffer_Release). */
static inline int fa_y(PyObject *o, Py_buffer *b) {
    if (PyUnicode_Check(o)) {
        PyErr_SetString(PyExc_TypeError, "a bytes-like object is required, not 'str'");
        return -1;
    }
    return PyObject_GetBuffer(o, b, PyBUF_SIMPLE);
}

/* A new tuple of n new references (stolen, NULL-safe: a NULL item, from a
 * failed constructor, fails the whole tuple and releases the others). */
static inline PyObject *fa_tuple(Py_ssize_t n, PyObject **items) {
    PyObject *t = NULL;
    for (Py_ssize_t i = 0; i < n; i++)
        if (!items[i]) goto fail;
    t = PyTuple_New(n);
    if (!t) goto fail;
    for (Py_ssize_t i = 0; i < n; i++) PyTuple_SET_ITEM(t, i, items[i]);
    return t;
fail:
    for (Py_ssize_t i = 0; i < n; i++) Py_XDECREF(items[i]);
    return NULL;
}

#endif
