//! The server's identity: a random id that changes when the database is restored from a backup
//! (or copied), so tills can notice that receipts the server acknowledged may be gone and that
//! their change-feed cursor may be ahead of the server's.
//!
//! The id is kept in the database and in a sidecar file `<db>.identity` beside it, with the
//! database's watermark (receipts stored + customer changes; it only grows). The sidecar is
//! rewritten at start and every few seconds while the server runs ([`Identity::note`]). At start,
//! a database whose id differs from the sidecar's (a copy, a fresh file) or whose watermark is
//! below the sidecar's (restored from a backup taken before later writes) gets a new id. Backups
//! copy the database only. The id is served in `GET /healthz` (`server_id`).

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::store::pg::PgRepo;
use crate::store::sqlite::SqliteRepo;

fn sidecar(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(".identity");
    PathBuf::from(p)
}

/// The server identity of one database file.
#[derive(Clone, Debug)]
pub struct Identity {
    pub id: String,
    /// None on PostgreSQL: the id lives in the database only (several servers share it; restores
    /// are the database administrator's, with the database's own tools).
    sidecar: Option<PathBuf>,
}

impl Identity {
    /// The identity for this start; a new one when the database and its sidecar disagree.
    pub fn establish(db: &Path, repo: &SqliteRepo) -> anyhow::Result<Identity> {
        let side = sidecar(db);
        let in_db = repo.identity().context("reading the server identity")?;
        let wm = repo.watermark().context("reading the database watermark")?;
        let in_file = std::fs::read_to_string(&side).ok().and_then(|s| {
            let mut it = s.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.parse::<i64>().ok()?))
        });
        let kept = match (&in_db, &in_file) {
            (Some(a), Some((b, file_wm))) if a == b && wm >= *file_wm => Some(a.clone()),
            _ => None,
        };
        let id = match kept {
            Some(id) => id,
            None => {
                let id = hex::encode(rand::random::<[u8; 16]>());
                if in_db.is_some() {
                    tracing::warn!(
                        db = %db.display(),
                        "the database does not match {} (restored from a backup or copied): new server identity \
                         {id}; tills resend what this server may no longer have",
                        side.display()
                    );
                }
                repo.set_identity(&id).context("recording the server identity")?;
                id
            }
        };
        let me = Identity {
            id,
            sidecar: Some(side),
        };
        me.note(wm)?;
        Ok(me)
    }

    /// The identity of a PostgreSQL database: made by the first server that starts on it.
    pub fn shared(repo: &PgRepo) -> anyhow::Result<Identity> {
        let new_id = hex::encode(rand::random::<[u8; 16]>());
        let id = repo.identity_or(&new_id).context("reading the server identity")?;
        Ok(Identity { id, sidecar: None })
    }

    /// Record the current watermark in the sidecar (atomically: temp file, fsync, rename).
    pub fn note(&self, watermark: i64) -> anyhow::Result<()> {
        let Some(sidecar) = &self.sidecar else { return Ok(()) };
        let tmp = sidecar.with_extension("identity.tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
            writeln!(f, "{} {watermark}", self.id)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, sidecar).with_context(|| format!("writing {}", sidecar.display()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{transact, Tx};
    use protocol::v1::{Customer, CustomerName, CustomerState};
    use protocol::CustomerId;

    fn write_something(repo: &SqliteRepo, n: &str) {
        let c = Customer {
            id: CustomerId::from(n),
            name: CustomerName::Company { company_name: n.into() },
            contact: Default::default(),
            consents: Default::default(),
            birthday: None,
            tier: None,
            parent: None,
            discount_override: None,
        };
        transact(repo, |tx: &mut dyn Tx| {
            Ok(tx.put_customer(&c, &CustomerState::default())?)
        })
        .unwrap();
    }

    #[test]
    fn the_identity_survives_a_restart_and_changes_on_restore() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        let first = Identity::establish(&db, &SqliteRepo::open(&db).unwrap()).unwrap().id;
        assert_eq!(first.len(), 32);
        // A restart: same id.
        let repo = SqliteRepo::open(&db).unwrap();
        assert_eq!(Identity::establish(&db, &repo).unwrap().id, first);
        drop(repo);
        // A backup is taken; the server runs on and writes (and notes its watermark) …
        let backup = dir.path().join("backup.db");
        std::fs::copy(&db, &backup).unwrap();
        let repo = SqliteRepo::open(&db).unwrap();
        let ident = Identity::establish(&db, &repo).unwrap();
        assert_eq!(ident.id, first);
        write_something(&repo, "C1");
        ident.note(repo.watermark().unwrap()).unwrap();
        drop(repo);
        // … a restart after writes keeps the id …
        assert_eq!(
            Identity::establish(&db, &SqliteRepo::open(&db).unwrap()).unwrap().id,
            first
        );
        // … the database is restored from the backup: a new id.
        std::fs::copy(&backup, &db).unwrap();
        let restored = Identity::establish(&db, &SqliteRepo::open(&db).unwrap()).unwrap().id;
        assert_ne!(restored, first);
        // A copy of the database elsewhere (no sidecar) is another server too.
        let copy = dir.path().join("copy.db");
        std::fs::copy(&db, &copy).unwrap();
        assert_ne!(
            Identity::establish(&copy, &SqliteRepo::open(&copy).unwrap())
                .unwrap()
                .id,
            restored
        );
    }
}
