/** The version of this software, as both planes report it (node hello, OpenTelemetry resource). */
export const SOFTWARE_VERSION = '0.1.0';
