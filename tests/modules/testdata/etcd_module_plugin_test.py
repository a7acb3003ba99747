# Unit test of the action plugin's choice of executable (run by TestActionPluginPicksTheHostArch):
# the uname -m -> Go arch mapping, the digest file read instead of hashing, and the messages naming an
# architecture the collection has no executable for.
import hashlib
import importlib.util
import json
import os
import sys
import tempfile
import unittest

from ansible.errors import AnsibleError

spec = importlib.util.spec_from_file_location('etcd_module', sys.argv.pop(1))
plugin = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plugin)

BUILD_ID = 'abc/def/ghi/jkl'
EXE = b'\x7fELF' + b'\0' * 4000 + BUILD_ID.encode() + b'\0' * 100000


class ExecutablesTest(unittest.TestCase):

    def setUp(self):
        self.bindir = tempfile.mkdtemp()

    def put(self, goarch, content=EXE, digest=None):
        d = os.path.join(self.bindir, 'linux_' + goarch)
        os.makedirs(d)
        path = os.path.join(d, 'etcdops')
        with open(path, 'wb') as f:
            f.write(content)
        if digest is not None:
            with open(path + '.digest', 'w') as f:
                json.dump(digest, f)
        return path

    def test_mapping(self):
        self.assertEqual(plugin.GOARCH, {'x86_64': 'amd64', 'aarch64': 'arm64', 'ppc64le': 'ppc64le', 's390x': 's390x'})

    def test_digest_file_is_read_not_hashed(self):
        # A digest that is not the file's sha256 but describes it (size, build ID) is taken as is: the
        # controller does not hash; the host verifies the copy it runs.
        self.put('amd64', digest={'sha256': 'recorded-amd64', 'size': len(EXE), 'go_build_id': BUILD_ID})
        self.put('s390x', digest={'sha256': 'recorded-s390x', 'size': len(EXE), 'go_build_id': BUILD_ID})
        found = plugin.executables(self.bindir)
        self.assertEqual(sorted(found), ['s390x', 'x86_64'])
        self.assertEqual(found['x86_64'], (os.path.join(self.bindir, 'linux_amd64', 'etcdops'), 'recorded-amd64'))
        self.assertEqual(found['s390x'][1], 'recorded-s390x')

    def test_no_digest_file_hashes(self):
        self.put('arm64')
        self.assertEqual(plugin.executables(self.bindir)['aarch64'][1], hashlib.sha256(EXE).hexdigest())

    def test_stale_digest_file_is_an_error(self):
        # Rebuilt without make build: another build ID (or size) than recorded, and another sha256.
        other = EXE.replace(BUILD_ID.encode(), b'zzz/def/ghi/jkl')
        path = self.put('ppc64le', content=other,
                        digest={'sha256': hashlib.sha256(EXE).hexdigest(), 'size': len(EXE), 'go_build_id': BUILD_ID})
        with self.assertRaises(AnsibleError) as e:
            plugin.executables(self.bindir)
        self.assertIn(path + '.digest does not describe ' + path, str(e.exception))
        self.assertIn('make build', str(e.exception))

    def test_stale_digest_of_same_content_is_fine(self):
        # Same bytes, a digest from another build ID (e.g. hand-edited): hashed, and it agrees.
        self.put('amd64', digest={'sha256': hashlib.sha256(EXE).hexdigest(), 'size': len(EXE), 'go_build_id': 'other'})
        self.assertEqual(plugin.executables(self.bindir)['x86_64'][1], hashlib.sha256(EXE).hexdigest())

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
