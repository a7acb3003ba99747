# Unit test of the action plugin's choice and unpacking of executables (run by TestActionPluginPicksTheHostArch):
# the uname -m -> Go arch mapping, the digest file read instead of unpacking, the packed executable unpacked
# into the controller's cache and verified, a changed cache file never handed out, other versions pruned
# once unused for long, and the messages naming
# an architecture the collection has no executable for.
import hashlib
import importlib.util
import json
import lzma
import os
import stat
import sys
import tempfile
import time
import unittest

from ansible.errors import AnsibleError

spec = importlib.util.spec_from_file_location('etcd_module', sys.argv.pop(1))
plugin = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plugin)

EXE = b'\x7fELF' + b'\0' * 4000 + b'abc/def/ghi/jkl' + bytes(range(256)) * 400
SHA = hashlib.sha256(EXE).hexdigest()


class ExecutablesTest(unittest.TestCase):

    def setUp(self):
        self.bindir = tempfile.mkdtemp()
        os.environ['XDG_CACHE_HOME'] = tempfile.mkdtemp()

    def put(self, goarch, content=EXE, sha256=SHA):
        d = os.path.join(self.bindir, 'linux_' + goarch)
        os.makedirs(d)
        path = os.path.join(d, 'etcdops.xz')
        with open(path, 'wb') as f:
            f.write(lzma.compress(content))
        if sha256 is not None:
            with open(os.path.join(d, 'etcdops.digest'), 'w') as f:
                json.dump({'sha256': sha256, 'size': len(content)}, f)
        return path

    def test_mapping(self):
        self.assertEqual(plugin.GOARCH, {'x86_64': 'amd64', 'aarch64': 'arm64', 'ppc64le': 'ppc64le', 's390x': 's390x'})

    def test_digest_file_is_read_not_unpacked(self):
        # A task on a host with the executable cached needs only its sha256: nothing is unpacked.
        self.put('amd64', sha256='a' * 64)
        self.put('s390x', sha256='b' * 64)
        found = plugin.executables(self.bindir)
        self.assertEqual(sorted(found), ['s390x', 'x86_64'])
        self.assertEqual(found['x86_64'], (os.path.join(self.bindir, 'linux_amd64', 'etcdops.xz'), 'a' * 64))
        self.assertEqual(found['s390x'][1], 'b' * 64)
        self.assertFalse(os.path.exists(plugin.controller_cache()))

    def test_no_digest_file_is_an_error(self):
        path = self.put('arm64', sha256=None)
        with self.assertRaises(AnsibleError) as e:
            plugin.executables(self.bindir)
        self.assertIn('cannot read the sha256 of ' + path, str(e.exception))
        self.assertIn('make build', str(e.exception))

    def test_digest_not_a_sha256_is_an_error(self):
        # The sha256 names a cache directory and goes into a shell command on the host.
        path = self.put('amd64', sha256='../../x; touch /tmp/y')
        with self.assertRaises(AnsibleError) as e:
            plugin.executables(self.bindir)
        self.assertIn('cannot read the sha256 of ' + path, str(e.exception))
        self.assertIn('not a sha256', str(e.exception))

    def test_unpacked_into_a_private_cache(self):
        exe = plugin.unpacked(self.put('amd64'), SHA)
        self.assertEqual(exe, os.path.join(os.environ['XDG_CACHE_HOME'], 'etcdops-etcd', 'controller', SHA, 'etcdops'))
        with open(exe, 'rb') as f:
            self.assertEqual(f.read(), EXE)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.dirname(exe)).st_mode), 0o700)
        self.assertEqual(os.listdir(os.path.dirname(exe)), ['etcdops'])  # no temporary file left
        # Under a module's name (a binary module runs the module its file is named after): the same file.
        named = plugin.unpacked(self.put('s390x'), SHA, 'etcd_member')
        self.assertEqual(os.path.basename(named), 'etcd_member')
        self.assertEqual(os.path.realpath(named), exe)

    def test_other_versions_unused_for_long_are_pruned(self):
        # A new version unpacked removes other versions' executables unused for PRUNE_AFTER, and only those.
        cache = plugin.controller_cache()
        old, recent, other = os.path.join(cache, 'c' * 64), os.path.join(cache, 'd' * 64), os.path.join(cache, 'notes')
        for d in (old, recent, other):
            os.makedirs(d, 0o700)
            with open(os.path.join(d, 'etcdops'), 'wb') as f:
                f.write(b'x')
        now = time.time()
        os.utime(old, (now, now - plugin.PRUNE_AFTER - 60))
        os.utime(other, (now, now - plugin.PRUNE_AFTER - 60))
        os.utime(recent, (now, now - plugin.PRUNE_AFTER + 3600))
        plugin.unpacked(self.put('amd64'), SHA)
        self.assertEqual(sorted(os.listdir(cache)), sorted(['d' * 64, 'notes', SHA]))
        # Each use marks the version used: one unused for long but used now is kept.
        mine = os.path.join(cache, SHA)
        os.utime(mine, (now, now - plugin.PRUNE_AFTER - 60))
        plugin.unpacked(self.put('s390x'), SHA)
        self.assertGreater(os.lstat(mine).st_mtime, now - 60)

    def test_changed_cache_file_is_replaced_not_used(self):
        packed = self.put('ppc64le')
        exe = plugin.unpacked(packed, SHA)
        tampered = b'#!/bin/sh\ntouch /tmp/tampered-ran\n'.ljust(len(EXE), b'\0')  # same size, same head
        for content in (tampered, EXE[:100]):
            with open(exe, 'wb') as f:
                f.write(content)
            self.assertEqual(plugin.unpacked(packed, SHA), exe)
            with open(exe, 'rb') as f:
                self.assertEqual(f.read(), EXE)

    def test_stale_digest_is_an_error(self):
        # The .xz holds another executable than the digest names (rebuilt without make build): not cached.
        other = hashlib.sha256(b'other').hexdigest()
        packed = self.put('amd64', sha256=other)
        with self.assertRaises(AnsibleError) as e:
            plugin.unpacked(packed, other)
        self.assertIn('%s unpacks to an executable with sha256 %s, not the %s' % (packed, SHA, other), str(e.exception))
        self.assertEqual(os.listdir(os.path.join(plugin.controller_cache(), other)), [])

    def test_corrupt_pack_is_an_error(self):
        packed = self.put('arm64')
        with open(packed, 'r+b') as f:
            f.truncate(100)
        with self.assertRaises(AnsibleError) as e:
            plugin.unpacked(packed, SHA)
        self.assertIn(packed + ' cannot be unpacked', str(e.exception))
        self.assertEqual(os.listdir(os.path.join(plugin.controller_cache(), SHA)), [])

    def test_cache_dir_others_can_write_is_refused(self):
        d = os.path.join(plugin.controller_cache(), SHA)
        os.makedirs(d)
        os.chmod(d, 0o777)
        with self.assertRaises(AnsibleError) as e:
            plugin.unpacked(self.put('amd64'), SHA)
        self.assertIn('mode 0700', str(e.exception))

    def test_messages_name_the_architecture(self):
        self.put('amd64')
        found = plugin.executables(self.bindir)
        msg = plugin.no_executable_msg('aarch64', found)
        self.assertIn('aarch64 (linux/arm64)', msg)
        self.assertIn('it holds linux/amd64', msg)
        self.assertIn('BUILD_ARCHES', msg)
        msg = plugin.no_executable_msg('i686', found)
        self.assertIn('i686 (uname -m) is not one the collection builds for', msg)
        self.assertIn('linux/amd64', msg)


if __name__ == '__main__':
    unittest.main()
