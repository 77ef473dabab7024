//! A daemon killed between creating a LUN's file and committing the LUN (or between
//! committing a deletion and removing the file) leaves a file no LUN uses; the next start
//! removes it, and only it (found by the kill -9 reliability test).

use super::Fixture;

#[test]
fn a_start_removes_lun_files_no_lun_uses_and_nothing_else() {
    let mut f = Fixture::new(47099, false);
    let luns_dir = f.dir.path().join("data").join("luns");
    let stray = luns_dir.join(format!("{}.img", uuid::Uuid::new_v4()));
    std::fs::write(&stray, b"half-made").unwrap();
    let foreign = luns_dir.join("operator-notes.txt");
    std::fs::write(&foreign, b"not vds's").unwrap();
    let lun = f.luns()[0].clone();
    let own = std::path::PathBuf::from(lun.backing.path.clone().unwrap());
    f.restart();
    assert!(!stray.exists(), "leftover LUN file kept");
    assert!(foreign.exists(), "a file vds did not name was removed");
    assert!(own.exists(), "a live LUN's file was removed");
    assert_eq!(f.lun(lun.id).size_bytes, lun.size_bytes);
}
