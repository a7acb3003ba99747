#!/usr/bin/python
# -*- coding: utf-8 -*-
# Runs on the managed host under Python 2.7 or 3.x (RHEL/CentOS 7 targets): no f-strings, no pass_fds on 2.7.
from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: etcd_exec
short_description: Internal - runs a module of this collection from the host's cache of its executable
description:
  - Not for playbooks. The collection's action plugin (C(etcd_module)) runs every C(etcdops.etcd) module
    through it, so the collection's one executable is copied to a host once per version instead of on
    every task (see docs/speed.md).
  - The executable is kept in C(/var/cache/etcdops-etcd) (root) or C(~/.cache/etcdops-etcd) (other users),
    a directory only its owner can read, named by its sha256, and verified against that sha256 before every
    run; a missing or changed file is never run; the action plugin copies it again.
  - The action plugin sends the sha256 of the executable for every architecture the collection holds; the
    host's own (by C(uname -m)) is used, and a miss names it so that the action plugin copies that one.
  - The module's arguments reach the executable through a pipe (its standard input), never a file.
author: etcdops
options: {}
'''

import errno
import hashlib
import json
import os
import stat
import subprocess
import sys
import tempfile

from ansible.module_utils.basic import _load_params

PREFIX = 'etcdops-'


def emit(result, rc=0):
    sys.stdout.write(json.dumps(result) + '\n')
    sys.exit(rc)


def fail(msg):
    emit({'failed': True, 'changed': False, 'msg': msg}, 1)


def cache_dir():
    base = '/var/cache' if os.geteuid() == 0 else os.path.join(os.path.expanduser('~'), '.cache')
    path = os.path.join(base, 'etcdops-etcd')
    try:
        os.makedirs(path, 0o700)
    except OSError as e:
        if e.errno != errno.EEXIST:
            fail('cannot create the module cache %s: %s' % (path, e))
    st = os.lstat(path)
    # Only its owner may write (or read) what gets executed from here.
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        fail('the module cache %s must be a directory owned by uid %d with mode 0700 (found uid %d, mode %o); '
             'remove it and run again' % (path, os.geteuid(), st.st_uid, stat.S_IMODE(st.st_mode)))
    return path


def sha256_fd(fd):
    h = hashlib.sha256()
    os.lseek(fd, 0, 0)
    while True:
        b = os.read(fd, 1 << 20)
        if not b:
            break
        h.update(b)
    return h.hexdigest()


def install(src, dest, want, directory):
    fd = os.open(src, os.O_RDONLY)
    try:
        got = sha256_fd(fd)
        if got != want:
            fail('the copied executable %s has sha256 %s, not %s' % (src, got, want))
        tmp_fd, tmp = tempfile.mkstemp(dir=directory, prefix='.install-')
        try:
            os.lseek(fd, 0, 0)
            while True:
                b = os.read(fd, 1 << 20)
                if not b:
                    break
                os.write(tmp_fd, b)
            os.fchmod(tmp_fd, 0o700)
            os.fsync(tmp_fd)
        finally:
            os.close(tmp_fd)
        os.rename(tmp, dest)
    finally:
        os.close(fd)
    # One version is kept: earlier ones go (a run still using one keeps its open file).
    for name in os.listdir(directory):
        if name.startswith(PREFIX) and os.path.join(directory, name) != dest:
            os.unlink(os.path.join(directory, name))


def main():
    params = _load_params()
    ctl = params.pop('_etcdops', None)
    if not isinstance(ctl, dict):
        fail('etcd_exec is run by the etcdops.etcd modules, not by playbooks')
    # The module sees its own name, as when Ansible ran its executable directly.
    params['_ansible_module_name'] = ctl['name']
    # The action plugin sends the digest of each architecture's executable: this host's is chosen here,
    # and a miss names the architecture so that the right one is copied.
    machine = os.uname()[4]
    want = ctl['sha256'].get(machine)
    if want is None:
        emit({'changed': False, 'etcdops_cache_miss': 'no_executable', 'etcdops_machine': machine})
    directory = cache_dir()
    path = os.path.join(directory, PREFIX + want)
    if ctl.get('src'):
        install(ctl['src'], path, want, directory)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        if e.errno == errno.ENOENT:
            emit({'changed': False, 'etcdops_cache_miss': 'absent', 'etcdops_machine': machine})
        raise
    try:
        # Verified from the open file that then runs (through /proc/self/fd): a file changed since it was
        # cached never runs; it is removed and the action plugin copies the executable again.
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o022 or sha256_fd(fd) != want:
            os.unlink(path)
            emit({'changed': False, 'etcdops_cache_miss': 'changed', 'etcdops_machine': machine})
        # The arguments (a password among them) reach the module through a pipe, never a file that a
        # killed run could leave behind.
        exe = '/proc/self/fd/%d' % fd
        kw = {'pass_fds': (fd,)} if sys.version_info[0] >= 3 else {'close_fds': False}
        proc = subprocess.Popen(['etcdops', ctl['module'], '/dev/stdin'], executable=exe, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
        out, err = proc.communicate(json.dumps(params).encode('utf-8'))
    finally:
        os.close(fd)
    if not isinstance(out, str):
        out, err = out.decode('utf-8', 'replace'), err.decode('utf-8', 'replace')
    sys.stdout.write(out)
    sys.stderr.write(err)
    sys.exit(proc.returncode)


if __name__ == '__main__':
    main()
