/*
 * methods.h -- what module.c assembles: every unit's table of Segment
 * methods and the module-level functions.  Nothing else includes it.
 */
#ifndef SHMRT_METHODS_H
#define SHMRT_METHODS_H

#include "core.h"

extern PyMethodDef segment_methods[]; /* segment.c: raw typed access, close */
extern PyMethodDef sched_methods[];
extern PyMethodDef task_methods[];
extern PyMethodDef admin_methods[];
extern PyMethodDef arena_methods[];
extern PyMethodDef relay_methods[];
extern PyMethodDef reclaim_methods[];
extern PyMethodDef kill_methods[];
extern PyMethodDef broken_methods[];
extern PyMethodDef udp_methods[];    /* udp.c: the relay's batched UDP I/O */

PyObject *core_compute_layout(PyObject *self, PyObject *arg); /* segment.c */
void crash_init(void);                                         /* crash.c */
PyObject *crash_py_points(PyObject *self, PyObject *unused);
PyObject *crash_py_set_role(PyObject *self, PyObject *arg);
PyObject *crash_py_point(PyObject *self, PyObject *arg);
PyObject *crash_py_armed(PyObject *self, PyObject *unused);

#endif
