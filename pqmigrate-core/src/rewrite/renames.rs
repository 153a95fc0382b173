//! Renamed columns: a copied column chunk recorded under its new name, with its type.

use std::sync::Arc;

use parquet::schema::types::Type;

/// The input's field type `field` under the output's `name` (itself when the name is unchanged).
pub(super) fn renamed_type(
    field: &parquet::schema::types::TypePtr,
    name: &str,
) -> parquet::errors::Result<parquet::schema::types::TypePtr> {
    if field.name() == name {
        return Ok(field.clone());
    }
    let info = field.get_basic_info();
    let id = info.has_id().then(|| info.id());
    let repetition = info.has_repetition().then(|| info.repetition());
    let renamed = match field.as_ref() {
        Type::PrimitiveType {
            physical_type,
            type_length,
            scale,
            precision,
            ..
        } => Type::primitive_type_builder(name, *physical_type)
            .with_repetition(repetition.unwrap_or(parquet::basic::Repetition::OPTIONAL))
            .with_converted_type(info.converted_type())
            .with_logical_type(info.logical_type_ref().cloned())
            .with_length(*type_length)
            .with_precision(*precision)
            .with_scale(*scale)
            .with_id(id)
            .build()?,
        Type::GroupType { fields, .. } => {
            let mut builder = Type::group_type_builder(name)
                .with_fields(fields.clone())
                .with_converted_type(info.converted_type())
                .with_logical_type(info.logical_type_ref().cloned())
                .with_id(id);
            if let Some(repetition) = repetition {
                builder = builder.with_repetition(repetition);
            }
            builder.build()?
        }
    };
    Ok(Arc::new(renamed))
}

/// `column`'s metadata recorded under the descriptor `descr` (a renamed column's new path),
/// every other field as it was: offsets, sizes, statistics, encodings, indexes, bloom filter.
pub(super) fn renamed_chunk(
    column: &parquet::file::metadata::ColumnChunkMetaData,
    descr: parquet::schema::types::ColumnDescPtr,
) -> parquet::errors::Result<parquet::file::metadata::ColumnChunkMetaData> {
    let mut builder = parquet::file::metadata::ColumnChunkMetaData::builder(descr)
        .set_compression_codec(column.compression_codec())
        .set_encodings_mask(*column.encodings_mask())
        .set_num_values(column.num_values())
        .set_total_compressed_size(column.compressed_size())
        .set_total_uncompressed_size(column.uncompressed_size())
        .set_data_page_offset(column.data_page_offset())
        .set_index_page_offset(column.index_page_offset())
        .set_dictionary_page_offset(column.dictionary_page_offset())
        .set_bloom_filter_offset(column.bloom_filter_offset())
        .set_bloom_filter_length(column.bloom_filter_length())
        .set_offset_index_offset(column.offset_index_offset())
        .set_offset_index_length(column.offset_index_length())
        .set_column_index_offset(column.column_index_offset())
        .set_column_index_length(column.column_index_length())
        .set_unencoded_byte_array_data_bytes(column.unencoded_byte_array_data_bytes())
        .set_repetition_level_histogram(column.repetition_level_histogram().cloned())
        .set_definition_level_histogram(column.definition_level_histogram().cloned());
    if let Some(path) = column.file_path() {
        builder = builder.set_file_path(path.to_string());
    }
    if let Some(statistics) = column.statistics() {
        builder = builder.set_statistics(statistics.clone());
    }
    if let Some(geo) = column.geo_statistics() {
        builder = builder.set_geo_statistics(Box::new(geo.clone()));
    }
    if let Some(stats) = column.page_encoding_stats() {
        builder = builder.set_page_encoding_stats(stats.clone());
    } else if let Some(mask) = column.page_encoding_stats_mask() {
        builder = builder.set_page_encoding_stats_mask(*mask);
    }
    builder.build()
}
