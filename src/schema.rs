//! The columns of the input tables: their names, `DescribeInstances` spellings, types and
//! whether they are required. The policy compiler resolves field names against these schemas
//! and the input loaders parse cells by them; this module is the one thing both share, so that
//! neither imports the other.

/// A column's declared type, as the policy language names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    String,
    Integer,
    Time,
    /// `;`-separated values, such as `operation_locks`.
    List,
}

impl Type {
    pub fn name(self) -> &'static str {
        match self {
            Type::String => "string",
            Type::Integer => "integer",
            Type::Time => "time",
            Type::List => "list",
        }
    }

    /// The name with its article, for messages: `a time`, `an integer`.
    pub fn a_name(self) -> &'static str {
        match self {
            Type::String => "a string",
            Type::Integer => "an integer",
            Type::Time => "a time",
            Type::List => "a list",
        }
    }

    pub fn from_name(name: &str) -> Option<Type> {
        [Type::String, Type::Integer, Type::Time, Type::List]
            .into_iter()
            .find(|t| t.name() == name)
    }
}

/// A value set that some built-in columns must belong to; cells are stored normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// `PrePaid`/`Subscription` become `PrePaid`; `PostPaid`/`PayAsYouGo` become `PostPaid`.
    ChargeType,
    /// Pending, Running, Starting, Stopping, Stopped (any case), stored capitalised.
    InstanceStatus,
    /// An integer ≥ 0.
    NonNegative,
    /// A region id, stored trimmed and in lower case (`CN-Hangzhou ` is `cn-hangzhou`).
    RegionId,
    /// The inventory's instance id: the table notes the rows whose id is not written as the
    /// API writes ids (upper case, surrounding spaces), for the ledger's loose matching.
    InstanceId,
    /// IP addresses (one, or several `;`-separated): a cell of anything else, such as an
    /// export's `-`, `N/A` or `[]`, is malformed rather than taken for an address.
    IpAddress,
    /// Lock reasons, `;`-separated words (`financial;security`): a cell of anything else, such
    /// as an export's JSON, is malformed rather than read as a lock nobody recognises.
    LockReasons,
}

#[derive(Debug, Clone)]
pub struct Column {
    /// The snake_case name used in policies and in our own outputs.
    pub name: String,
    /// Other accepted header spellings (`DescribeInstances` names).
    pub aliases: Vec<&'static str>,
    pub ty: Type,
    pub required: bool,
    /// A column a policy declares (`columns:`): the file must have it, since a rule reading a
    /// column that is not there could not be evaluated; its cells may be empty.
    pub declared: bool,
    /// Not a built-in column: one a policy adds under `columns:`.
    pub extra: bool,
    /// Identifiers are written exactly as read, and make their row malformed when they begin
    /// with a character a spreadsheet would run as a formula.
    pub identifier: bool,
    pub domain: Option<Domain>,
    /// Whether the run keeps the column's values (identifiers, and what the policy reads);
    /// the other columns are checked and dropped.
    pub keep: bool,
}

impl Column {
    fn new(name: &str, aliases: &[&'static str], ty: Type) -> Column {
        Column {
            name: name.to_string(),
            aliases: aliases.to_vec(),
            ty,
            required: false,
            declared: false,
            extra: false,
            identifier: false,
            domain: None,
            keep: false,
        }
    }

    fn kept(mut self) -> Column {
        self.keep = true;
        self
    }

    fn required(mut self) -> Column {
        self.required = true;
        self
    }

    fn identifier(mut self) -> Column {
        self.identifier = true;
        self.keep = true;
        self.required()
    }

    fn domain(mut self, d: Domain) -> Column {
        self.domain = Some(d);
        self
    }

    /// Whether a header cell names this column: case-insensitive, ignoring `_`, `-` and spaces,
    /// so `instance_id`, `InstanceId` and `INSTANCE-ID` all match.
    pub fn matches_header(&self, header: &str) -> bool {
        let h = fold(header);
        fold(&self.name) == h || self.aliases.iter().any(|a| fold(a) == h)
    }
}

/// Pairs (an earlier position, a later one) of header cells that name the same column as
/// `fold` compares names: `note` and `Note`, or `blocked_reason` and `Blocked-Reason`. Each later
/// cell is paired with the first cell of its name only; empty names name no column.
pub fn repeated_headers(header: &[String]) -> Vec<(usize, usize)> {
    let mut first: std::collections::HashMap<String, usize> = Default::default();
    let mut pairs = Vec::new();
    for (i, folded) in header.iter().map(|h| fold(h)).enumerate() {
        match first.get(&folded) {
            _ if folded.is_empty() => {}
            Some(&earlier) => pairs.push((earlier, i)),
            None => {
                first.insert(folded, i);
            }
        }
    }
    pairs
}

/// A header or column name folded for comparison.
pub fn fold(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '_' | '-' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The columns of one input table, in a fixed order: a column's index here is the index the
/// compiled policy uses to read it.
#[derive(Debug, Clone)]
pub struct Schema {
    /// `instances` or `requests`: the prefix of field references (`instance.region_id`).
    pub table: &'static str,
    pub columns: Vec<Column>,
}

impl Schema {
    /// The inventory, as `DescribeInstances` describes an instance.
    pub fn instances() -> Schema {
        use Type::*;
        let columns = vec![
            Column::new("instance_id", &["InstanceId"], String)
                .identifier()
                .domain(Domain::InstanceId),
            Column::new("account_id", &["AccountId", "OwnerId"], String).identifier(),
            Column::new("region_id", &["RegionId"], String)
                .required()
                .kept()
                .domain(Domain::RegionId),
            Column::new("charge_type", &["InstanceChargeType"], String)
                .required()
                .domain(Domain::ChargeType),
            Column::new("expired_time", &["ExpiredTime"], Time).required(),
            Column::new("creation_time", &["CreationTime"], Time),
            Column::new("status", &["Status"], String).domain(Domain::InstanceStatus),
            Column::new(
                "internet_max_bandwidth_out",
                &["InternetMaxBandwidthOut"],
                Integer,
            )
            .required()
            .domain(Domain::NonNegative),
            Column::new(
                "public_ip",
                &["PublicIpAddress", "PublicIpAddress.IpAddress"],
                String,
            )
            .domain(Domain::IpAddress),
            Column::new(
                "eip_address",
                &["EipAddress", "EipAddress.IpAddress"],
                String,
            )
            .domain(Domain::IpAddress),
            Column::new(
                "operation_locks",
                &["OperationLocks", "OperationLocks.LockReason"],
                List,
            )
            .domain(Domain::LockReasons),
        ];
        Schema {
            table: "instance",
            columns,
        }
    }

    /// The day's batch of code requests.
    pub fn requests() -> Schema {
        let columns = vec![
            Column::new("request_id", &[], Type::String).identifier(),
            Column::new("account_id", &["AccountId", "OwnerId"], Type::String).identifier(),
            Column::new("instance_id", &["InstanceId"], Type::String).identifier(),
            Column::new("requested_at", &[], Type::Time)
                .required()
                .kept(),
        ];
        Schema {
            table: "request",
            columns,
        }
    }

    /// The column a policy's field name names, as a header cell would name it: by its name or
    /// its `DescribeInstances` spelling (`PublicIpAddress` is `public_ip`).
    pub fn index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.matches_header(name))
    }

    /// Adds an extra (non-identifier) column that a policy declares; returns its index.
    pub fn add_extra(&mut self, name: &str, ty: Type) -> usize {
        let mut column = Column::new(name, &[], ty);
        column.declared = true;
        column.extra = true;
        self.columns.push(column);
        self.columns.len() - 1
    }
}

/// Column indices that the pipeline itself relies on.
pub mod col {
    pub const INSTANCE_ID: usize = 0;
    pub const REQUEST_ID: usize = 0;
    pub const REQUEST_ACCOUNT: usize = 1;
    pub const REQUEST_INSTANCE: usize = 2;
    pub const REQUESTED_AT: usize = 3;
}

/// The ledger's columns, in the order a new ledger is created with.
pub const LEDGER_COLUMNS: [&str; 7] = [
    "code",
    "instance_id",
    "account_id",
    "request_id",
    "issued_at",
    "status",
    "domain",
];

/// The ledger column (its place in `LEDGER_COLUMNS`) a ledger header names, whatever its case,
/// `_`, `-` and spaces (`OwnerId` is `account_id`); `None` for a column of the file's own.
pub fn ledger_column(header: &str) -> Option<usize> {
    let h = fold(header);
    LEDGER_COLUMNS
        .iter()
        .position(|c| fold(c) == h || (h == "ownerid" && *c == "account_id"))
}

/// The column a ledger header cell names: a `LEDGER_COLUMNS` name (`OwnerId` is `account_id`),
/// or, for an extra column, the cell's name folded.
pub fn ledger_key(header: &str) -> String {
    ledger_column(header).map_or_else(|| fold(header), |c| LEDGER_COLUMNS[c].to_string())
}

/// Whether a cell would be run as a formula by a spreadsheet: it starts with `=`, `+`, `-` or
/// `@`, or with a tab or a carriage return (which some spreadsheets skip before such a sign).
/// Such an identifier makes its row malformed; such free text is written neutralised.
pub fn looks_like_formula(s: &str) -> bool {
    matches!(
        s.as_bytes().first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ledger status is read in any case with surrounding spaces ignored (README, *Inputs*);
    /// another word, or the words spelt otherwise, is no status.
    #[test]
    fn a_ledger_status_is_read_in_any_case() {
        for (text, want) in [
            ("spent", Some(Status::Spent)),
            ("SPENT", Some(Status::Spent)),
            (" spent ", Some(Status::Spent)),
            ("In_Use", Some(Status::InUse)),
            ("ISSUED", Some(Status::Issued)),
            ("in-use", None),
            ("inuse", None),
            ("", None),
        ] {
            assert_eq!(Status::parse(text), want, "{text:?}");
        }
    }

    #[test]
    fn headers_that_match_each_other_are_repeats_of_the_first() {
        let header: Vec<String> = ["note", "a", "Note", "", "_", "NO-TE", "", "b", "a"]
            .map(String::from)
            .to_vec();
        // Each later cell pairs with the first of its name; empty names pair with nothing.
        assert_eq!(repeated_headers(&header), [(0, 2), (0, 5), (1, 8)]);
        assert!(repeated_headers(&["x".to_string(), "y".to_string()]).is_empty());
    }

    #[test]
    fn statuses_parse_trimmed_in_any_case() {
        for status in Status::ALL {
            let name = status.name();
            for text in [
                name.to_string(),
                name.to_uppercase(),
                format!(" {name}\t"),
                format!("\u{3000}{}", name.to_uppercase()),
            ] {
                assert_eq!(Status::parse(&text), Some(status), "{text:?}");
            }
        }
        for text in ["", "used", "issued_", "in use", "spent spent"] {
            assert_eq!(Status::parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn fixed_indices_match_the_schemas() {
        let i = Schema::instances();
        assert_eq!(i.columns[col::INSTANCE_ID].name, "instance_id");
        assert_eq!(i.columns[1].name, "account_id");
        let r = Schema::requests();
        assert_eq!(r.columns[col::REQUEST_ID].name, "request_id");
        assert_eq!(r.columns[col::REQUEST_ACCOUNT].name, "account_id");
        assert_eq!(r.columns[col::REQUEST_INSTANCE].name, "instance_id");
        assert_eq!(r.columns[col::REQUESTED_AT].name, "requested_at");
    }

    #[test]
    fn headers_match_both_spellings_in_any_case() {
        let s = Schema::instances();
        let account = &s.columns[1];
        for h in [
            "account_id",
            "AccountId",
            "OwnerId",
            "OWNERID",
            "Account-Id",
        ] {
            assert!(account.matches_header(h), "{h}");
        }
        assert!(!account.matches_header("account"));
        assert_eq!(s.index("InternetMaxBandwidthOut"), Some(7));
        // A policy names a column as a header cell does, by an API spelling too.
        assert_eq!(s.index("OwnerId"), Some(1));
        assert_eq!(s.index("PublicIpAddress"), s.index("public_ip"));
        assert_eq!(s.index("internet_max_bandwidth_out"), Some(7));
    }
}

/// A ledger row's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Issued, not yet used.
    Issued = 0,
    /// Bound to a filing in progress.
    InUse = 1,
    /// Filing completed: permanently invalid, never reusable.
    Spent = 2,
}

impl Status {
    pub const ALL: [Status; 3] = [Status::Issued, Status::InUse, Status::Spent];

    pub fn name(self) -> &'static str {
        match self {
            Status::Issued => "issued",
            Status::InUse => "in_use",
            Status::Spent => "spent",
        }
    }

    /// Case-insensitive, surrounding spaces ignored.
    pub fn parse(text: &str) -> Option<Status> {
        // The usual cell is a name exactly as written; any other is trimmed and folded.
        let exact = Status::ALL.into_iter().find(|s| s.name() == text);
        exact.or_else(|| {
            let t = text.trim();
            Status::ALL
                .into_iter()
                .find(|s| s.name().eq_ignore_ascii_case(t))
        })
    }
}

/// One cell as evaluation sees it. Empty cells, and cells that did not parse, are `Missing`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Missing,
    Str(&'a str),
    Int(i64),
    Time(crate::time::Time),
}
