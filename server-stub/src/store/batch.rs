//! A sync batch's unit of work: a [`Tx`] over the backend's transaction that reads what the
//! batch's items need up front ([`BatchTx::prefetch`]: its receipt ids, cards, accounts, sub-card
//! holders and receipt tags, one statement each), answers the items' reads from memory, keeps
//! their account, ledger, receipt and message writes in memory and writes them in one go
//! ([`Tx::write_batch`]) when the batch ends ([`BatchTx::finish`]) or when an item does something
//! the buffer does not cover (then everything buffered is written first, so every read of the
//! backend sees it).
//!
//! Item atomicity stays that of the batch's savepoints: an item's buffered writes are undone in
//! memory when the item is rolled back. The backend's SAVEPOINT is taken only for an item that
//! writes through to the backend (everything buffered before the item is written first, so rolling
//! back to it undoes that item alone). A plain receipt item runs no statement at all.

// foldhash: the batch maps are keyed by short ids and rebuilt per batch (SipHash was 1 % of ingest).
use foldhash::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use protocol::rules::{Program, RulesSnapshot};
use protocol::v1::{Customer, CustomerState, LedgerEntry, Receipt, SyncBatch, SyncPayload};
use protocol::{CardId, CustomerId, ReceiptId, StoreId, TillId};
use rust_decimal::Decimal;

use super::{
    BatchWrites, CardRow, CustomerRow, Message, MessageAckRow, MigrationCodeRow, NewLedgerEntry, ReceiptFacts,
    RedemptionRow, RequestRow, StoreError, StoreResult, StoredReceipt, TagRow, TillRow, Tx,
};

/// The open item (between `savepoint` and `release_savepoint` / `rollback_to_savepoint`).
#[derive(Default)]
struct Item {
    /// The backend's SAVEPOINT was taken (the item wrote through); everything buffered since
    /// belongs to this item.
    in_backend: bool,
    ledger_mark: usize,
    receipts_mark: usize,
    touched_mark: usize,
    dirty_mark: usize,
    messages_mark: usize,
    /// Cache entries as they were before the item changed them (first change only); a key
    /// absent from the cache before maps to None.
    customers_before: HashMap<String, Option<Option<CustomerRow>>>,
    receipts_before: HashMap<String, Option<Option<StoredReceipt>>>,
}

pub struct BatchTx<'t> {
    inner: &'t mut dyn Tx,
    // Read caches (None: known not to exist). Every buffered write is in them.
    receipts: HashMap<String, Option<StoredReceipt>>,
    cards: HashMap<String, Option<CardRow>>,
    customers: HashMap<String, Option<CustomerRow>>,
    subs: HashMap<String, Vec<CustomerId>>,
    /// Every tag of one store for a set of POS numbers (trimmed), oldest first.
    tags: Option<(StoreId, HashSet<String>, Vec<TagRow>)>,
    open_redemptions: HashMap<String, Vec<RedemptionRow>>,
    // Write buffers, in the order the writes were made.
    dirty: Vec<String>,
    dirty_set: HashSet<String>,
    touched: Vec<CustomerId>,
    touched_set: HashSet<String>,
    ledger: Vec<NewLedgerEntry>,
    new_receipts: Vec<(StoredReceipt, Option<ReceiptId>)>,
    /// Messages recorded (tier upgrades), with their causes: a cause is recorded once.
    messages: Vec<Message>,
    message_causes: HashSet<String>,
    item: Option<Item>,
}

impl<'t> BatchTx<'t> {
    pub fn new(inner: &'t mut dyn Tx) -> BatchTx<'t> {
        BatchTx {
            inner,
            receipts: HashMap::default(),
            cards: HashMap::default(),
            customers: HashMap::default(),
            subs: HashMap::default(),
            tags: None,
            open_redemptions: HashMap::default(),
            dirty: Vec::new(),
            dirty_set: HashSet::default(),
            touched: Vec::new(),
            touched_set: HashSet::default(),
            ledger: Vec::new(),
            new_receipts: Vec::new(),
            messages: Vec::new(),
            message_causes: HashSet::default(),
            item: None,
        }
    }

    /// Read what the batch's items will look at: their receipt ids (dedupe), cards, the
    /// accounts those cards earn into (holders and parents), the accounts' sub-card holders and
    /// the store's receipt tags for the batch's POS numbers.
    pub fn prefetch(&mut self, batch: &SyncBatch) -> StoreResult<()> {
        let mut ids: Vec<ReceiptId> = Vec::new();
        let mut numbers: Vec<String> = Vec::new();
        let mut cards: Vec<CardId> = Vec::new();
        for it in &batch.items {
            match &it.payload {
                SyncPayload::Receipt(r) => {
                    ids.push(r.id.clone());
                    if r.store_id == batch.store_id {
                        numbers.push(r.pos_receipt_no.trim().to_string());
                    }
                    cards.extend(r.card.clone());
                }
                SyncPayload::Redemption(r) => cards.push(r.card.clone()),
                SyncPayload::ReceiptTag(t) => cards.push(t.card.clone()),
                SyncPayload::Registration(_) | SyncPayload::MigrationPairing(_) | SyncPayload::MessageAck(_) => {}
            }
        }
        ids.sort();
        ids.dedup();
        numbers.sort();
        numbers.dedup();
        cards.sort();
        cards.dedup();
        if !ids.is_empty() {
            self.receipts.reserve(ids.len());
            for id in &ids {
                self.receipts.insert(id.0.clone(), None);
            }
            for r in self.inner.receipts_in(&ids)? {
                self.receipts.insert(r.receipt.id.0.clone(), Some(r));
            }
        }
        if !cards.is_empty() {
            self.cards.reserve(cards.len());
            for c in &cards {
                self.cards.insert(c.expose().to_string(), None);
            }
            for c in self.inner.cards_in(&cards)? {
                self.cards.insert(c.number.expose().to_string(), Some(c));
            }
        }
        let holders: Vec<CustomerId> = self
            .cards
            .values()
            .flatten()
            .filter_map(|c| c.customer_id.clone())
            .collect();
        self.load_customers(&holders)?;
        let parents: Vec<CustomerId> = holders
            .iter()
            .filter_map(|h| self.customers.get(&h.0)?.as_ref()?.customer.parent.clone())
            .collect();
        self.load_customers(&parents)?;
        let mut accounts: Vec<CustomerId> = holders
            .iter()
            .filter_map(|h| self.customers.get(&h.0)?.as_ref())
            .map(|row| row.customer.parent.clone().unwrap_or_else(|| row.customer.id.clone()))
            .filter(|a| !self.subs.contains_key(&a.0))
            .collect();
        accounts.sort();
        accounts.dedup();
        if !accounts.is_empty() {
            for a in &accounts {
                self.subs.insert(a.0.clone(), Vec::new());
            }
            for (p, sub) in self.inner.sub_customers_in(&accounts)? {
                self.subs.entry(p.0).or_default().push(sub);
            }
        }
        if !numbers.is_empty() {
            let rows = self.inner.tags_of_numbers(&batch.store_id, &numbers)?;
            self.tags = Some((batch.store_id.clone(), numbers.into_iter().collect(), rows));
        }
        Ok(())
    }

    fn load_customers(&mut self, ids: &[CustomerId]) -> StoreResult<()> {
        let mut missing: Vec<CustomerId> = ids
            .iter()
            .filter(|id| !self.customers.contains_key(&id.0))
            .cloned()
            .collect();
        missing.sort();
        missing.dedup();
        if missing.is_empty() {
            return Ok(());
        }
        for id in &missing {
            self.customers.insert(id.0.clone(), None);
        }
        for row in self.inner.customers_in(&missing)? {
            self.customers.insert(row.customer.id.0.clone(), Some(row));
        }
        Ok(())
    }

    /// Write everything still buffered. Call before the transaction commits.
    pub fn finish(mut self) -> StoreResult<()> {
        if self.item.is_some() {
            return Err(StoreError::Other(
                "a sync batch ended inside an item's savepoint".into(),
            ));
        }
        self.flush_all()
    }

    fn has_buffered(&self) -> bool {
        !(self.dirty.is_empty()
            && self.touched.is_empty()
            && self.ledger.is_empty()
            && self.new_receipts.is_empty()
            && self.messages.is_empty())
    }

    /// The buffered writes from position `from` of each buffer (customers: the given ids' values
    /// as `value_of` says).
    fn writes(
        &self,
        dirty: &[String],
        value_of: &dyn Fn(&str) -> Option<CustomerRow>,
        touched: &[CustomerId],
        ledger: &[NewLedgerEntry],
        receipts: &[(StoredReceipt, Option<ReceiptId>)],
        messages: &[Message],
    ) -> BatchWrites {
        let customers: Vec<(Arc<Customer>, Arc<CustomerState>)> = dirty
            .iter()
            .filter_map(|id| value_of(id))
            .map(|row| (row.customer, row.state))
            .collect();
        let written: HashSet<&str> = customers.iter().map(|(c, _)| c.id.0.as_str()).collect();
        BatchWrites {
            touched: touched
                .iter()
                .filter(|t| !written.contains(t.0.as_str()))
                .cloned()
                .collect(),
            customers,
            ledger: ledger.to_vec(),
            receipts: receipts.to_vec(),
            messages: messages.to_vec(),
        }
    }

    fn clear_buffers(&mut self) {
        self.dirty.clear();
        self.dirty_set.clear();
        self.touched.clear();
        self.touched_set.clear();
        self.ledger.clear();
        self.new_receipts.clear();
        self.messages.clear();
        self.message_causes.clear();
    }

    fn flush_all(&mut self) -> StoreResult<()> {
        if !self.has_buffered() {
            return Ok(());
        }
        let cache = &self.customers;
        let mut w = self.writes(
            &self.dirty,
            &|id| cache.get(id).cloned().flatten(),
            &self.touched,
            &[],
            &[],
            &[],
        );
        // Everything buffered is written now: the ledger, receipts and messages move, not copied.
        w.ledger = std::mem::take(&mut self.ledger);
        w.receipts = std::mem::take(&mut self.new_receipts);
        w.messages = std::mem::take(&mut self.messages);
        self.inner.write_batch(&w)?;
        self.clear_buffers();
        Ok(())
    }

    /// Before the backend is read or written otherwise: inside an item, write what the earlier
    /// items buffered, take the backend's SAVEPOINT, then write the item's own; outside, write
    /// everything.
    fn sync_backend(&mut self) -> StoreResult<()> {
        let Some(item) = self.item.as_mut() else {
            return self.flush_all();
        };
        if item.in_backend {
            return self.flush_all();
        }
        let item = self.item.take().expect("open item");
        // The state before the item: buffered entries up to the marks, customers as they were.
        let before = {
            let cache = &self.customers;
            let pre = &item.customers_before;
            self.writes(
                &self.dirty[..item.dirty_mark],
                &|id| match pre.get(id) {
                    Some(old) => old.clone().flatten(),
                    None => cache.get(id).cloned().flatten(),
                },
                &self.touched[..item.touched_mark],
                &self.ledger[..item.ledger_mark],
                &self.new_receipts[..item.receipts_mark],
                &self.messages[..item.messages_mark],
            )
        };
        // The item's own: the customers it changed (current values), the rest past the marks.
        let mine = {
            let mut ids: Vec<String> = self.dirty[..item.dirty_mark]
                .iter()
                .filter(|id| item.customers_before.contains_key(*id))
                .cloned()
                .collect();
            ids.extend(self.dirty[item.dirty_mark..].iter().cloned());
            let cache = &self.customers;
            self.writes(
                &ids,
                &|id| cache.get(id).cloned().flatten(),
                &self.touched[item.touched_mark..],
                &self.ledger[item.ledger_mark..],
                &self.new_receipts[item.receipts_mark..],
                &self.messages[item.messages_mark..],
            )
        };
        if !before.is_empty() {
            self.inner.write_batch(&before)?;
        }
        self.inner.savepoint()?;
        self.item = Some(Item {
            in_backend: true,
            ..Item::default()
        });
        if !mine.is_empty() {
            self.inner.write_batch(&mine)?;
        }
        self.clear_buffers();
        Ok(())
    }

    fn clear_caches(&mut self) {
        debug_assert!(!self.has_buffered(), "caches cleared with writes buffered");
        self.receipts.clear();
        self.cards.clear();
        self.customers.clear();
        self.subs.clear();
        self.tags = None;
        self.open_redemptions.clear();
    }

    /// A read the buffer does not answer: the backend must see every buffered write first.
    fn read<T>(&mut self, f: impl FnOnce(&mut dyn Tx) -> StoreResult<T>) -> StoreResult<T> {
        self.sync_backend()?;
        f(&mut *self.inner)
    }

    /// A write the buffer does not take: after the buffered writes; the caches start again
    /// unless `keeps_caches` (the write touches no cached table).
    fn write<T>(&mut self, keeps_caches: bool, f: impl FnOnce(&mut dyn Tx) -> StoreResult<T>) -> StoreResult<T> {
        if self.item.is_some() {
            self.sync_backend()?;
        } else {
            self.flush_all()?;
        }
        let out = f(&mut *self.inner)?;
        if !keeps_caches {
            self.clear_caches();
        }
        Ok(out)
    }

    fn note_customer_change(&mut self, id: &str) {
        if let Some(item) = self.item.as_mut() {
            if !item.in_backend && !item.customers_before.contains_key(id) {
                item.customers_before
                    .insert(id.to_string(), self.customers.get(id).cloned());
            }
        }
    }

    fn mark_dirty(&mut self, id: &str) {
        if self.dirty_set.insert(id.to_string()) {
            self.dirty.push(id.to_string());
        }
    }
}

impl Tx for BatchTx<'_> {
    fn savepoint(&mut self) -> StoreResult<()> {
        if self.item.is_some() {
            return Err(StoreError::Other("nested item savepoints are not supported".into()));
        }
        self.item = Some(Item {
            in_backend: false,
            ledger_mark: self.ledger.len(),
            receipts_mark: self.new_receipts.len(),
            touched_mark: self.touched.len(),
            dirty_mark: self.dirty.len(),
            messages_mark: self.messages.len(),
            customers_before: HashMap::default(),
            receipts_before: HashMap::default(),
        });
        Ok(())
    }

    fn release_savepoint(&mut self) -> StoreResult<()> {
        match self.item.take() {
            Some(item) if item.in_backend => self.inner.release_savepoint(),
            Some(_) => Ok(()),
            None => Err(StoreError::Other("release without a savepoint".into())),
        }
    }

    fn rollback_to_savepoint(&mut self) -> StoreResult<()> {
        let Some(item) = self.item.take() else {
            return Err(StoreError::Other("rollback without a savepoint".into()));
        };
        if item.in_backend {
            // Everything buffered belongs to this item; what the caches hold may be its effects.
            self.inner.rollback_to_savepoint()?;
            self.clear_buffers();
            self.clear_caches();
            return Ok(());
        }
        self.ledger.truncate(item.ledger_mark);
        self.new_receipts.truncate(item.receipts_mark);
        for m in self.messages.drain(item.messages_mark..) {
            self.message_causes.remove(&m.cause);
        }
        for t in self.touched.drain(item.touched_mark..) {
            self.touched_set.remove(&t.0);
        }
        for id in self.dirty.drain(item.dirty_mark..) {
            self.dirty_set.remove(&id);
        }
        for (id, old) in item.customers_before {
            match old {
                Some(v) => self.customers.insert(id, v),
                None => self.customers.remove(&id),
            };
        }
        for (id, old) in item.receipts_before {
            match old {
                Some(v) => self.receipts.insert(id, v),
                None => self.receipts.remove(&id),
            };
        }
        Ok(())
    }

    fn lock_accounts_of(&mut self, cards: &[CardId]) -> StoreResult<()> {
        self.read(|t| t.lock_accounts_of(cards))
    }

    fn program(&mut self) -> StoreResult<Option<RulesSnapshot>> {
        self.read(|t| t.program())
    }
    fn put_program(&mut self, program: &Program) -> StoreResult<RulesSnapshot> {
        self.write(true, |t| t.put_program(program))
    }

    fn till_by_token_hash(&mut self, token_sha256: &str) -> StoreResult<Option<TillRow>> {
        self.read(|t| t.till_by_token_hash(token_sha256))
    }
    fn put_till(&mut self, store: &StoreId, till: &TillId, token_sha256: &str) -> StoreResult<()> {
        self.write(true, |t| t.put_till(store, till, token_sha256))
    }
    fn revoke_till(&mut self, store: &StoreId, till: &TillId) -> StoreResult<bool> {
        self.write(true, |t| t.revoke_till(store, till))
    }

    fn receipt(&mut self, id: &ReceiptId) -> StoreResult<Option<StoredReceipt>> {
        if let Some(r) = self.receipts.get(&id.0) {
            return Ok(r.clone());
        }
        // Every buffered receipt is in the cache: the backend has the rest.
        let r = self.inner.receipt(id)?;
        self.receipts.insert(id.0.clone(), r.clone());
        Ok(r)
    }
    fn receipts_by_pos_no(&mut self, store: &StoreId, pos_receipt_no: &str) -> StoreResult<Vec<StoredReceipt>> {
        self.read(|t| t.receipts_by_pos_no(store, pos_receipt_no))
    }
    fn insert_receipt(&mut self, r: StoredReceipt, original: Option<&ReceiptId>) -> StoreResult<()> {
        let id = r.receipt.id.0.clone();
        if let Some(item) = self.item.as_mut() {
            if !item.in_backend && !item.receipts_before.contains_key(&id) {
                item.receipts_before.insert(id.clone(), self.receipts.get(&id).cloned());
            }
        }
        // The read cache needs no copy of the stored JSON.
        let cached = StoredReceipt {
            receipt: Arc::clone(&r.receipt),
            payload_hash: r.payload_hash.clone(),
            account: r.account.clone(),
            effect: Arc::clone(&r.effect),
            payload_json: None,
        };
        self.receipts.insert(id, Some(cached));
        self.new_receipts.push((r, original.cloned()));
        Ok(())
    }
    fn returns_of(&mut self, original: &ReceiptId) -> StoreResult<Vec<Receipt>> {
        self.read(|t| t.returns_of(original))
    }
    fn receipts_between(&mut self, from: NaiveDate, to: NaiveDate) -> StoreResult<Vec<ReceiptFacts>> {
        self.read(|t| t.receipts_between(from, to))
    }

    fn request(&mut self, request_id: &str) -> StoreResult<Option<RequestRow>> {
        self.read(|t| t.request(request_id))
    }
    fn insert_request(&mut self, row: &RequestRow) -> StoreResult<()> {
        self.write(true, |t| t.insert_request(row))
    }

    fn card(&mut self, number: &CardId) -> StoreResult<Option<CardRow>> {
        if let Some(c) = self.cards.get(number.expose()) {
            return Ok(c.clone());
        }
        // Cards are never buffered.
        let c = self.inner.card(number)?;
        self.cards.insert(number.expose().to_string(), c.clone());
        Ok(c)
    }
    fn put_card(&mut self, card: &CardRow) -> StoreResult<()> {
        self.write(false, |t| t.put_card(card))
    }
    fn cards_of(&mut self, customer: &CustomerId) -> StoreResult<Vec<CardRow>> {
        self.read(|t| t.cards_of(customer))
    }
    fn cards_issued_between(&mut self, from: DateTime<Utc>, to: DateTime<Utc>) -> StoreResult<Vec<CardRow>> {
        self.read(|t| t.cards_issued_between(from, to))
    }
    fn next_counter(&mut self, name: &str) -> StoreResult<i64> {
        self.write(true, |t| t.next_counter(name))
    }

    fn customer(&mut self, id: &CustomerId) -> StoreResult<Option<CustomerRow>> {
        if let Some(c) = self.customers.get(&id.0) {
            return Ok(c.clone());
        }
        // Every buffered customer is in the cache: the backend has the rest.
        let c = self.inner.customer(id)?;
        self.customers.insert(id.0.clone(), c.clone());
        Ok(c)
    }
    fn customer_parent(&mut self, id: &CustomerId) -> StoreResult<Option<Option<CustomerId>>> {
        if let Some(c) = self.customers.get(&id.0) {
            return Ok(c.as_ref().map(|r| r.customer.parent.clone()));
        }
        self.inner.customer_parent(id)
    }
    fn put_customer(&mut self, customer: &Customer, state: &CustomerState) -> StoreResult<()> {
        // Buffered for a known customer whose parent stays (parents are read by the backend
        // for sub-card holder lists); anything else goes to the backend at once.
        let known =
            matches!(self.customers.get(&customer.id.0), Some(Some(row)) if row.customer.parent == customer.parent);
        if !known {
            return self.write(false, |t| t.put_customer(customer, state));
        }
        let id = customer.id.0.clone();
        self.note_customer_change(&id);
        let row = self.customers[&id].as_ref().expect("known");
        // An unchanged customer (the usual credit: only the state moves) keeps its shared copy.
        // (The caller usually hands back the very customer it read: no deep comparison then.)
        let same = std::ptr::eq(&*row.customer, customer) || *row.customer == *customer;
        let kept = same.then(|| Arc::clone(&row.customer));
        let seq = row.change_seq;
        self.customers.insert(
            id.clone(),
            Some(CustomerRow {
                customer: kept.unwrap_or_else(|| Arc::new(customer.clone())),
                state: Arc::new(state.clone()),
                change_seq: seq,
            }),
        );
        self.mark_dirty(&id);
        Ok(())
    }
    fn touch_customer(&mut self, id: &CustomerId) -> StoreResult<()> {
        if self.touched_set.insert(id.0.clone()) {
            self.touched.push(id.clone());
        }
        Ok(())
    }
    fn sub_customers(&mut self, parent: &CustomerId) -> StoreResult<Vec<CustomerId>> {
        if let Some(s) = self.subs.get(&parent.0) {
            return Ok(s.clone());
        }
        // Parent links are never buffered (see put_customer).
        let s = self.inner.sub_customers(parent)?;
        self.subs.insert(parent.0.clone(), s.clone());
        Ok(s)
    }
    fn all_customers(&mut self) -> StoreResult<Vec<CustomerRow>> {
        self.read(|t| t.all_customers())
    }
    fn changed_since(&mut self, since: i64, limit: usize) -> StoreResult<Vec<CustomerRow>> {
        self.read(|t| t.changed_since(since, limit))
    }
    fn max_change_seq(&mut self) -> StoreResult<i64> {
        self.read(|t| t.max_change_seq())
    }

    fn migration_code(&mut self, code: &str) -> StoreResult<Option<MigrationCodeRow>> {
        self.read(|t| t.migration_code(code))
    }
    fn put_migration_code(&mut self, row: &MigrationCodeRow) -> StoreResult<()> {
        self.write(true, |t| t.put_migration_code(row))
    }

    fn append_ledger(&mut self, e: &NewLedgerEntry) -> StoreResult<()> {
        self.ledger.push(e.clone());
        Ok(())
    }
    fn ledger(&mut self, account: &CustomerId, before: Option<i64>, limit: usize) -> StoreResult<Vec<LedgerEntry>> {
        self.read(|t| t.ledger(account, before, limit))
    }
    fn ledger_points(&mut self) -> StoreResult<Vec<(CustomerId, Decimal)>> {
        self.read(|t| t.ledger_points())
    }
    fn redemption(&mut self, id: &str) -> StoreResult<Option<RedemptionRow>> {
        self.read(|t| t.redemption(id))
    }
    fn put_redemption(&mut self, r: &RedemptionRow) -> StoreResult<()> {
        self.write(false, |t| t.put_redemption(r))
    }
    fn open_redemptions(&mut self, store: &StoreId) -> StoreResult<Vec<RedemptionRow>> {
        if let Some(r) = self.open_redemptions.get(&store.0) {
            return Ok(r.clone());
        }
        // Redemptions are never buffered.
        let r = self.inner.open_redemptions(store)?;
        self.open_redemptions.insert(store.0.clone(), r.clone());
        Ok(r)
    }
    fn all_redemptions(&mut self) -> StoreResult<Vec<RedemptionRow>> {
        self.read(|t| t.all_redemptions())
    }
    fn set_card_preload(&mut self, card: &CardId, points: Decimal) -> StoreResult<()> {
        self.write(true, |t| t.set_card_preload(card, points))
    }
    fn take_card_preload(&mut self, card: &CardId) -> StoreResult<Option<Decimal>> {
        self.write(true, |t| t.take_card_preload(card))
    }

    fn record_message(&mut self, m: &Message) -> StoreResult<bool> {
        // Buffered (a tier upgrade no longer writes everything before it and takes a SAVEPOINT):
        // a cause is new when neither the buffer nor the backend has it (the backend holds every
        // message not buffered, so it needs no flush to answer).
        if self.message_causes.contains(&m.cause) || self.inner.message_recorded(&m.cause)? {
            return Ok(false);
        }
        self.message_causes.insert(m.cause.clone());
        self.messages.push(m.clone());
        Ok(true)
    }
    fn message_recorded(&mut self, cause: &str) -> StoreResult<bool> {
        Ok(self.message_causes.contains(cause) || self.inner.message_recorded(cause)?)
    }
    fn messages(&mut self, kind: Option<&str>, limit: usize) -> StoreResult<Vec<Message>> {
        self.read(|t| t.messages(kind, limit))
    }

    fn tag(&mut self, id: &str) -> StoreResult<Option<TagRow>> {
        self.read(|t| t.tag(id))
    }
    fn put_tag(&mut self, tag: &TagRow) -> StoreResult<()> {
        self.write(false, |t| t.put_tag(tag))
    }
    fn tags_for(
        &mut self,
        store: &StoreId,
        pos_receipt_no: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> StoreResult<Vec<TagRow>> {
        let no = pos_receipt_no.trim();
        if let Some((s, numbers, rows)) = &self.tags {
            if s == store && numbers.contains(no) {
                return Ok(rows
                    .iter()
                    .filter(|t| t.tag.pos_receipt_no.trim() == no && t.tag.date >= from && t.tag.date <= to)
                    .cloned()
                    .collect());
            }
        }
        // Tags are never buffered.
        self.inner.tags_for(store, pos_receipt_no, from, to)
    }
    fn waiting_tags_with_total(&mut self, tagged_before: DateTime<Utc>) -> StoreResult<Vec<TagRow>> {
        self.read(|t| t.waiting_tags_with_total(tagged_before))
    }
    fn set_receipt_account(&mut self, id: &ReceiptId, account: Option<&CustomerId>, card: &CardId) -> StoreResult<()> {
        self.write(false, |t| t.set_receipt_account(id, account, card))
    }
    fn unmatched_receipts(&mut self, card: &CardId, since: NaiveDate) -> StoreResult<Vec<StoredReceipt>> {
        self.read(|t| t.unmatched_receipts(card, since))
    }
    fn message_acked(&mut self, cause: &str) -> StoreResult<bool> {
        self.read(|t| t.message_acked(cause))
    }
    fn put_message_ack(&mut self, a: &MessageAckRow) -> StoreResult<bool> {
        self.write(true, |t| t.put_message_ack(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteRepo;
    use crate::store::{read, transact};
    use protocol::v1::LedgerKind;

    fn program() -> Program {
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../../../fixtures/seed/demo.json")).expect("seed fixture is JSON");
        serde_json::from_value(v["program"].clone()).expect("program")
    }

    fn customer(id: &str) -> Customer {
        crate::store::test_customer(id)
    }

    fn balance(points: i64) -> CustomerState {
        CustomerState {
            points_balance: Decimal::from(points),
            ..Default::default()
        }
    }

    fn stored(no: &str) -> StoredReceipt {
        let (s, t) = (StoreId::from("S1"), TillId::from("T1"));
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-23T08:00:00+01:00").unwrap();
        let receipt = Receipt {
            id: ReceiptId::derive(&s, &t, no, &at),
            store_id: s,
            till_id: t,
            pos_receipt_no: no.into(),
            issued_at: at,
            currency: protocol::Currency::CZK,
            total: Decimal::ZERO,
            card: None,
            original: None,
            lines: vec![],
            vat: vec![],
        };
        StoredReceipt {
            effect: Arc::new(protocol::rules::evaluate_receipt(&program(), &receipt)),
            receipt: Arc::new(receipt),
            payload_json: None,
            payload_hash: format!("h{no}"),
            account: Some(CustomerId("C1".into())),
        }
    }

    fn entry(points: i64, after: i64) -> NewLedgerEntry {
        NewLedgerEntry {
            account_id: CustomerId("C1".into()),
            at: Utc::now(),
            kind: LedgerKind::Receipt,
            cause_id: format!("+{points}"),
            store_id: None,
            till_id: None,
            points: Decimal::from(points),
            balance_after: Decimal::from(after),
            note: None,
        }
    }

    fn message(cause: &str) -> Message {
        Message {
            id: 0,
            cause: cause.into(),
            kind: "test".into(),
            customer_id: "C1".into(),
            channel: "none".into(),
            recipient: String::new(),
            text: "t".into(),
            created_at: Utc::now(),
        }
    }

    /// Item atomicity through the buffer: an item rolled back leaves nothing (buffered or written
    /// through), the items before it are written once, later items read their effects.
    #[test]
    fn a_rolled_back_item_leaves_no_trace_and_the_others_are_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let repo = SqliteRepo::open(&dir.path().join("s.db")).unwrap();
        let c1 = CustomerId("C1".into());
        transact(&repo, |tx| Ok(tx.put_customer(&customer("C1"), &balance(0))?)).unwrap();
        let seq_before = read(&repo, |tx| Ok(tx.max_change_seq()?)).unwrap();
        let (r1, r2, r3) = (stored("1"), stored("2"), stored("3"));
        transact(&repo, |tx| {
            let mut b = BatchTx::new(tx);
            assert_eq!(b.customer(&c1)?.unwrap().state.points_balance, Decimal::ZERO);
            // 1: applies (buffered only)
            b.savepoint()?;
            b.put_customer(&customer("C1"), &balance(10))?;
            b.append_ledger(&entry(10, 10))?;
            b.insert_receipt(r1.clone(), None)?;
            b.touch_customer(&c1)?;
            assert!(b.record_message(&message("m1"))?);
            assert!(!b.record_message(&message("m1"))?, "a cause is recorded once");
            b.release_savepoint()?;
            // 2: refused after buffering: undone in memory
            b.savepoint()?;
            b.put_customer(&customer("C1"), &balance(30))?;
            b.append_ledger(&entry(20, 30))?;
            b.insert_receipt(r2.clone(), None)?;
            assert!(b.record_message(&message("m2"))?);
            b.rollback_to_savepoint()?;
            // 3: sees 1, not 2; writes through (the backend's savepoint), then is refused
            b.savepoint()?;
            assert_eq!(b.customer(&c1)?.unwrap().state.points_balance, Decimal::from(10));
            assert!(b.receipt(&r1.receipt.id)?.is_some());
            assert!(b.receipt(&r2.receipt.id)?.is_none());
            assert!(!b.message_recorded("m2")?, "rolled back with its item");
            assert!(b.record_message(&message("m3"))?);
            b.insert_request(&RequestRow {
                request_id: "r3".into(),
                kind: "test".into(),
                payload_hash: "h".into(),
                result: protocol::v1::AckResult::Applied,
            })?;
            b.put_customer(&customer("C1"), &balance(15))?;
            b.insert_receipt(r3.clone(), None)?;
            b.rollback_to_savepoint()?;
            // 4: reads the backend again: 1 is there, 3 is not
            b.savepoint()?;
            assert_eq!(b.customer(&c1)?.unwrap().state.points_balance, Decimal::from(10));
            assert!(b.receipt(&r1.receipt.id)?.is_some());
            assert!(b.receipt(&r3.receipt.id)?.is_none());
            assert!(b.request("r3")?.is_none());
            assert!(!b.record_message(&message("m1"))?);
            assert!(b.record_message(&message("m4"))?);
            assert!(b.record_message(&message("m2"))?);
            b.release_savepoint()?;
            b.finish()?;
            Ok(())
        })
        .unwrap();
        read(&repo, |tx| {
            assert_eq!(tx.customer(&c1)?.unwrap().state.points_balance, Decimal::from(10));
            let ledger = tx.ledger(&c1, None, 10)?;
            assert_eq!(ledger.len(), 1, "{ledger:?}");
            assert_eq!(ledger[0].points, Decimal::from(10));
            assert!(tx.receipt(&r1.receipt.id)?.is_some());
            assert!(tx.receipt(&r2.receipt.id)?.is_none());
            assert!(tx.receipt(&r3.receipt.id)?.is_none());
            let causes: Vec<String> = tx.messages(None, 10)?.into_iter().map(|m| m.cause).collect();
            assert_eq!(causes, ["m1", "m4", "m2"]);
            assert!(tx.max_change_seq()? > seq_before, "the account's change is in the feed");
            Ok(())
        })
        .unwrap();
    }

    /// A batch that ends in an error writes nothing (the buffer dies with the transaction).
    #[test]
    fn nothing_is_written_when_the_batch_fails() {
        let dir = tempfile::tempdir().unwrap();
        let repo = SqliteRepo::open(&dir.path().join("s.db")).unwrap();
        let c1 = CustomerId("C1".into());
        transact(&repo, |tx| Ok(tx.put_customer(&customer("C1"), &balance(0))?)).unwrap();
        let r1 = stored("1");
        let out: Result<(), crate::error::ApiError> = transact(&repo, |tx| {
            let mut b = BatchTx::new(tx);
            b.customer(&c1)?;
            b.savepoint()?;
            b.put_customer(&customer("C1"), &balance(10))?;
            b.insert_receipt(r1.clone(), None)?;
            b.release_savepoint()?;
            // a delegated read writes the buffer first, then the unit of work fails
            b.max_change_seq()?;
            Err(crate::error::ApiError::internal("boom"))
        });
        assert!(out.is_err());
        read(&repo, |tx| {
            assert_eq!(tx.customer(&c1)?.unwrap().state.points_balance, Decimal::ZERO);
            assert!(tx.receipt(&r1.receipt.id)?.is_none());
            Ok(())
        })
        .unwrap();
    }
}
