//! `AWS::DynamoDB::Table` resources.

use super::node::Node;
use crate::Error;

/// One `AWS::DynamoDB::Table` of the template: what CreateTable and UpdateTimeToLive need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    pub logical_id: String,
    pub key_schema: KeySchema,
    pub attribute_definitions: Vec<AttributeDefinition>,
    pub global_secondary_indexes: Vec<GlobalSecondaryIndex>,
    pub billing_mode: BillingMode,
    /// `StreamSpecification.StreamViewType`; `None` when the table has no stream.
    pub stream_view_type: Option<StreamViewType>,
    /// `TimeToLiveSpecification.AttributeName` when `Enabled: true`.
    pub ttl_attribute: Option<String>,
}

/// A partition key and an optional sort key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySchema {
    pub partition_key: String,
    pub sort_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeDefinition {
    pub name: String,
    pub attribute_type: AttributeType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeType {
    String,
    Number,
    Binary,
}

impl AttributeType {
    /// The DynamoDB name: `S`, `N` or `B`.
    pub fn as_str(self) -> &'static str {
        match self {
            AttributeType::String => "S",
            AttributeType::Number => "N",
            AttributeType::Binary => "B",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalSecondaryIndex {
    pub name: String,
    pub key_schema: KeySchema,
    pub projection: Projection,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Projection {
    All,
    KeysOnly,
    /// The keys plus these attributes.
    Include(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillingMode {
    PayPerRequest,
    Provisioned,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamViewType {
    KeysOnly,
    NewImage,
    OldImage,
    NewAndOldImages,
}

impl StreamViewType {
    /// The DynamoDB name, e.g. `NEW_AND_OLD_IMAGES`.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamViewType::KeysOnly => "KEYS_ONLY",
            StreamViewType::NewImage => "NEW_IMAGE",
            StreamViewType::OldImage => "OLD_IMAGE",
            StreamViewType::NewAndOldImages => "NEW_AND_OLD_IMAGES",
        }
    }
}

impl TableSpec {
    /// Reads the table from its resource mapping (`resource` is the node holding `Properties`).
    pub(crate) fn parse(logical_id: &str, resource: &Node<'_>) -> Result<TableSpec, Error> {
        let props = resource.required("Properties")?;

        // Properties this model does not carry would be dropped silently; refuse them instead.
        for unsupported in ["LocalSecondaryIndexes", "ImportSourceSpecification"] {
            if let Some(node) = props.field(unsupported)? {
                return Err(node.error("not supported by the local provisioning (localstack/)"));
            }
        }

        let attribute_definitions = props
            .required("AttributeDefinitions")?
            .list()?
            .iter()
            .map(|item| {
                Ok(AttributeDefinition {
                    name: item.required("AttributeName")?.str()?.to_owned(),
                    attribute_type: item.required("AttributeType")?.one_of(&[
                        ("S", AttributeType::String),
                        ("N", AttributeType::Number),
                        ("B", AttributeType::Binary),
                    ])?,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;

        let key_node = props.required("KeySchema")?;
        let key_schema = parse_key_schema(&key_node)?;

        let mut global_secondary_indexes = Vec::new();
        if let Some(gsis) = props.field("GlobalSecondaryIndexes")? {
            for gsi in gsis.list()? {
                let keys = gsi.required("KeySchema")?;
                global_secondary_indexes.push(GlobalSecondaryIndex {
                    name: gsi.required("IndexName")?.str()?.to_owned(),
                    key_schema: parse_key_schema(&keys)?,
                    projection: parse_projection(&gsi.required("Projection")?)?,
                });
            }
        }

        let billing_mode = match props.field("BillingMode")? {
            Some(node) => node.one_of(&[
                ("PAY_PER_REQUEST", BillingMode::PayPerRequest),
                ("PROVISIONED", BillingMode::Provisioned),
            ])?,
            // CloudFormation's default.
            None => BillingMode::Provisioned,
        };

        let stream_view_type = match props.field("StreamSpecification")? {
            Some(stream) => Some(stream.required("StreamViewType")?.one_of(&[
                ("KEYS_ONLY", StreamViewType::KeysOnly),
                ("NEW_IMAGE", StreamViewType::NewImage),
                ("OLD_IMAGE", StreamViewType::OldImage),
                ("NEW_AND_OLD_IMAGES", StreamViewType::NewAndOldImages),
            ])?),
            None => None,
        };

        let ttl_attribute = match props.field("TimeToLiveSpecification")? {
            Some(ttl) if ttl.required("Enabled")?.bool()? => {
                Some(ttl.required("AttributeName")?.str()?.to_owned())
            }
            _ => None,
        };

        let spec = TableSpec {
            logical_id: logical_id.to_owned(),
            key_schema,
            attribute_definitions,
            global_secondary_indexes,
            billing_mode,
            stream_view_type,
            ttl_attribute,
        };
        spec.check_attributes(&props)?;
        Ok(spec)
    }

    /// Every key attribute is defined, and every definition is a key (DynamoDB's own rules, found
    /// here rather than as a less clear error from CreateTable).
    fn check_attributes(&self, props: &Node<'_>) -> Result<(), Error> {
        let definitions = props.required("AttributeDefinitions")?;
        let mut key_attributes = vec![("KeySchema", &self.key_schema)];
        key_attributes.extend(
            self.global_secondary_indexes
                .iter()
                .map(|gsi| ("GlobalSecondaryIndexes", &gsi.key_schema)),
        );
        for (where_, keys) in &key_attributes {
            for name in std::iter::once(&keys.partition_key).chain(keys.sort_key.as_ref()) {
                if !self.attribute_definitions.iter().any(|d| &d.name == name) {
                    return Err(definitions.error(format!(
                        "key attribute `{name}` (used in {where_}) is not defined here"
                    )));
                }
            }
        }
        for definition in &self.attribute_definitions {
            let used = key_attributes.iter().any(|(_, keys)| {
                keys.partition_key == definition.name
                    || keys.sort_key.as_deref() == Some(definition.name.as_str())
            });
            if !used {
                return Err(definitions.error(format!(
                    "attribute `{}` is defined but is no key of the table or of an index (DynamoDB rejects that)",
                    definition.name
                )));
            }
        }
        Ok(())
    }
}

fn parse_key_schema(node: &Node<'_>) -> Result<KeySchema, Error> {
    let mut partition_key = None;
    let mut sort_key = None;
    for element in node.list()? {
        let name = element.required("AttributeName")?.str()?.to_owned();
        let key_type = element.required("KeyType")?;
        let slot = match key_type.one_of(&[("HASH", true), ("RANGE", false)])? {
            true => &mut partition_key,
            false => &mut sort_key,
        };
        if slot.is_some() {
            return Err(key_type.error(format!("a second {} key", key_type.str()?)));
        }
        *slot = Some(name);
    }
    let partition_key =
        partition_key.ok_or_else(|| node.error("no element with `KeyType: HASH`"))?;
    Ok(KeySchema {
        partition_key,
        sort_key,
    })
}

fn parse_projection(node: &Node<'_>) -> Result<Projection, Error> {
    #[derive(Clone, Copy)]
    enum Kind {
        All,
        KeysOnly,
        Include,
    }
    let kind = node.required("ProjectionType")?.one_of(&[
        ("ALL", Kind::All),
        ("KEYS_ONLY", Kind::KeysOnly),
        ("INCLUDE", Kind::Include),
    ])?;
    Ok(match kind {
        Kind::All => Projection::All,
        Kind::KeysOnly => Projection::KeysOnly,
        Kind::Include => Projection::Include(
            node.required("NonKeyAttributes")?
                .list()?
                .iter()
                .map(|attr| attr.str().map(str::to_owned))
                .collect::<Result<_, _>>()?,
        ),
    })
}
