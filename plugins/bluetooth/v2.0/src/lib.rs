//! The Bluetooth 2.0 plugin library: pairing, connecting and media control of the device's Bluetooth
//! radio (the host's `bluetooth` device service). The implementation is `avs-plugin-bluetooth`.

avs_plugin_sdk::export_plugin!(avs_bluetooth_plugin::Bluetooth, "$CARGO_MANIFEST_DIR/../../../schemas/Bluetooth/2.0");
